package manifest

import (
	"regexp"
	"strings"
)

var (
	// kubeVersionForm is a Kubernetes version as Helm's --kube-version takes it: major.minor
	// with an optional patch and, after a patch, a server's pre-release and build parts
	// (v1.29.3-eks-adc7111).
	kubeVersionForm = regexp.MustCompile(`^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)?$`)
	// apiGroupForm is a DNS subdomain, what an API group must be.
	apiGroupForm = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// apiVersionForm is an API version as Kubernetes names them: v1, v2beta1, v1alpha3.
	apiVersionForm = regexp.MustCompile(`^v[0-9]+[a-z0-9]*$`)
	// kindForm is a kind: Helm's capability check is an exact string match, so a lower-case
	// kind would never match what discovery reports.
	kindForm = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
)

const (
	kubeVersionHelp = "e.g. v1.31.0 or \"1.31\""
	apiVersionHelp  = "write group/version or group/version/Kind, e.g. monitoring.coreos.com/v1 or monitoring.coreos.com/v1/ServiceMonitor (v1 or v1/Service for the core group)"
)

// clusterCapabilities checks the Kubernetes version and API versions a cluster declares for
// renders made without connecting to it.
func (v *validator) clusterCapabilities() {
	for i, c := range v.m.Clusters {
		p := indexPath("clusters", i)
		if c.KubeVersion != "" && !kubeVersionForm.MatchString(c.KubeVersion) {
			v.d.addAt(p+".kubeVersion", "%q is not a Kubernetes version (%s)", c.KubeVersion, kubeVersionHelp)
		}
		first := map[string]int{}
		for j, av := range c.APIVersions {
			ap := indexPath(p+".apiVersions", j)
			if !isAPIVersion(av) {
				v.d.addAt(ap, "%q is not an API version: %s", av, apiVersionHelp)
				continue
			}
			if k, dup := first[av]; dup {
				v.d.addAt(ap, "%q is listed twice (also %s)", av, indexPath(p+".apiVersions", k))
				continue
			}
			first[av] = j
		}
	}
}

// isAPIVersion reports whether s is "version", "group/version", "version/Kind" (core group) or
// "group/version/Kind", the forms a cluster's discovery yields.
func isAPIVersion(s string) bool {
	parts := strings.Split(s, "/")
	switch len(parts) {
	case 1:
		return apiVersionForm.MatchString(parts[0])
	case 2:
		if kindForm.MatchString(parts[1]) {
			return apiVersionForm.MatchString(parts[0])
		}
		return isAPIGroup(parts[0]) && apiVersionForm.MatchString(parts[1])
	case 3:
		return isAPIGroup(parts[0]) && apiVersionForm.MatchString(parts[1]) && kindForm.MatchString(parts[2])
	}
	return false
}

func isAPIGroup(s string) bool { return len(s) <= 253 && apiGroupForm.MatchString(s) }
