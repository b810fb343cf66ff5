package render

import (
	"fmt"
	"strings"
)

// Names and kinds a chart may not render: they are tandem's own, or they
// reach into what tandem relies on to write at all.
const (
	// ReservedNamespace holds tandem's writer lock, state records and the
	// Standby guard's parameters on every cluster (clusters.SystemNamespace).
	// A chart object there could refuse or replace them; Helm owning the
	// Namespace itself would delete it with the release.
	ReservedNamespace = "tandem-system"
	// ReservedNamePrefix names the Standby guard's policy, binding and
	// parameter (clusters.GuardName, and GuardName-<manifest id>). A chart
	// object under it would pass for the guard in the plan, and could lock
	// tandem out of a cluster that has no guard (an Active).
	ReservedNamePrefix = "tandem-standby-guard"
	// AllowAdmissionPoliciesField is the release field that lets its chart
	// render admission policies (Request.AllowAdmissionPolicies).
	AllowAdmissionPoliciesField = "allowAdmissionPolicies"
)

// admissionPolicyKinds are refused unless the release opts in: an
// admission policy applies to the whole cluster, so a chart that brings one
// can refuse tandem's own writes (its Lease, Helm's release Secrets) on
// every cluster, and the guard's with it.
var admissionPolicyKinds = map[string]bool{
	"ValidatingAdmissionPolicy":        true,
	"ValidatingAdmissionPolicyBinding": true,
	"MutatingAdmissionPolicy":          true,
	"MutatingAdmissionPolicyBinding":   true,
}

// checkReserved refuses, in a release's render, an object under tandem's
// reserved names or namespace, or an admission policy the release did not
// opt in to, naming the template, the release, the kind and the name.
// Hooks count as much as templates (Helm creates them too), and so do
// crds/ files.
func checkReserved(req Request, groups ...[]Object) error {
	for _, objs := range groups {
		for _, o := range objs {
			why := ""
			switch {
			case strings.HasPrefix(o.Name, ReservedNamePrefix):
				why = "its name starts with " + ReservedNamePrefix + ", the Standby guard's (tandem's own)"
			case o.Namespace == ReservedNamespace:
				why = "it is in namespace " + ReservedNamespace + ", which holds tandem's lock, state and guard parameters"
			case o.Kind == "Namespace" && o.Name == ReservedNamespace:
				why = "that namespace holds tandem's lock, state and guard parameters"
			case admissionPolicyKinds[o.Kind] && strings.HasPrefix(o.APIVersion, "admissionregistration.k8s.io/") && !req.AllowAdmissionPolicies:
				why = fmt.Sprintf("an admission policy applies to the whole cluster and can refuse tandem's own writes; set %s: true on the release in tandem.yaml to allow it", AllowAdmissionPoliciesField)
			}
			if why == "" {
				continue
			}
			src := o.Source
			if src == "" {
				src = "(no template)"
			}
			return fmt.Errorf("%s: release %s/%s may not render %s %s: %s", src, req.Namespace, req.Release, o.Kind, o.Name, why)
		}
	}
	return nil
}
