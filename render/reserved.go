package render

import (
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
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

// webhookKinds are the admission webhook configurations. A chart's webhook
// on its own CRDs, Pods or Ingresses is common and renders; one whose rules
// can match what tandem itself writes to do anything at all (tandemWrites)
// is refused unless the release opts in, like an admission policy: a
// `failurePolicy: Fail` webhook whose service is gone refuses tandem's lock,
// so tandem cannot even apply the revert that removes it.
var webhookKinds = map[string]bool{
	"ValidatingWebhookConfiguration": true,
	"MutatingWebhookConfiguration":   true,
}

// tandemWrites are the resources tandem writes on every run, whatever the
// charts: its writer lock, its state records and guard parameters, Helm's
// release storage, release namespaces, and the SelfSubjectReview that
// names its user ("group/resource", "" the core group).
var tandemWrites = []string{"coordination.k8s.io/leases", "/configmaps", "/secrets", "/namespaces", "authentication.k8s.io/selfsubjectreviews"}

// webhookOnTandem returns the first resource of tandemWrites that a webhook
// configuration's rules can match ("" for none). Selectors are not
// weighed: a namespace or object selector that spares tandem-system today
// does not spare Helm's release Secrets in the release namespaces.
func webhookOnTandem(body []byte) (string, error) {
	var wc struct {
		Webhooks []struct {
			Rules []struct {
				APIGroups []string `json:"apiGroups"`
				Resources []string `json:"resources"`
			} `json:"rules"`
		} `json:"webhooks"`
	}
	if err := yaml.Unmarshal(body, &wc); err != nil {
		return "", err
	}
	for _, w := range wc.Webhooks {
		for _, r := range w.Rules {
			for _, gr := range tandemWrites {
				group, resource, _ := strings.Cut(gr, "/")
				if !slices.Contains(r.APIGroups, group) && !slices.Contains(r.APIGroups, "*") {
					continue
				}
				// "x" and "*" match the resource itself, "*/*" it and its
				// subresources; "x/*" only x's subresources.
				if slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, "*") || slices.Contains(r.Resources, "*/*") {
					if group == "" {
						return resource, nil
					}
					return gr, nil
				}
			}
		}
	}
	return "", nil
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
			if why == "" && webhookKinds[o.Kind] && strings.HasPrefix(o.APIVersion, "admissionregistration.k8s.io/") && !req.AllowAdmissionPolicies {
				res, err := webhookOnTandem(o.Body)
				switch {
				case err != nil:
					why = fmt.Sprintf("its webhooks cannot be read (%v)", err)
				case res != "":
					why = fmt.Sprintf("its rules match %s, which tandem writes on every run (its lock, state records, Helm's release Secrets): a webhook that refuses them, or whose service is down, locks tandem out of the cluster; narrow its rules, or set %s: true on the release in tandem.yaml to allow it", res, AllowAdmissionPoliciesField)
				}
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
