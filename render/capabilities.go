package render

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"helm.sh/helm/v3/pkg/chartutil"
	k8sversion "k8s.io/apimachinery/pkg/util/version"
)

// DefaultKubeVersion is the Kubernetes version templates see when nothing is
// known of the cluster: the minor of the client-go tandem is built against
// (k8s.io/client-go v0.37.x is Kubernetes 1.37), a test keeps it in step
// with go.mod. Helm's own client-only default, v1.20.0, is years older than
// any cluster tandem can talk to: current charts refuse it (kubeVersion
// ">=1.23.0-0") or pick API versions the cluster no longer serves.
const DefaultKubeVersion = "v1.37.0"

// Capabilities are what templates see of a cluster in .Capabilities. The
// zero value means nothing is known: DefaultKubeVersion and Helm's default
// API versions.
type Capabilities struct {
	// KubeVersion is the cluster's Kubernetes version, e.g. "v1.31.0",
	// "1.31" or a server's git version such as "v1.29.3-eks-adc7111" (kept
	// as it is, so semverCompare sees what Helm's install would); "" means
	// DefaultKubeVersion.
	KubeVersion string
	// APIVersions are "group/version" and "group/version/Kind" entries
	// ("v1", "v1/Service", "monitoring.coreos.com/v1/ServiceMonitor"). They
	// are added to Helm's default set (every built-in group/version), as
	// `helm template --api-versions` does, unless Discovered is set.
	APIVersions []string
	// Discovered says APIVersions is the cluster's complete set, read from
	// its discovery API: templates then see exactly that set, as Helm's own
	// install does, rather than it added to the default set (which holds
	// group/versions a recent cluster no longer serves, e.g. policy/v1beta1).
	Discovered bool
}

// helm converts the capabilities to Helm's, filling in the defaults.
func (c Capabilities) helm() (*chartutil.Capabilities, error) {
	kv, err := kubeVersion(c.KubeVersion)
	if err != nil {
		return nil, err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = kv
	// Cloned, never appended to in place: the default set is shared by every render.
	if c.Discovered {
		caps.APIVersions = slices.Clone(c.APIVersions)
	} else {
		caps.APIVersions = append(slices.Clone(chartutil.DefaultVersionSet), c.APIVersions...)
	}
	return caps, nil
}

// kubeVersion parses a Kubernetes version as `helm template --kube-version`
// does, and writes it as a server would report it: "1.31" becomes
// "v1.31.0" (Helm would leave "v1.31"), while a full semantic version keeps
// its pre-release and build parts, since a server reports
// "v1.29.3-eks-adc7111" and that is the string Helm's install hands to
// templates and to kubeVersion constraints.
func kubeVersion(s string) (chartutil.KubeVersion, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		s = DefaultKubeVersion
	}
	// chartutil.ParseKubeVersion's own parser, so that what Helm refuses is refused.
	g, err := k8sversion.ParseGeneric(s)
	if err != nil {
		return chartutil.KubeVersion{}, fmt.Errorf("kube version %q: %w", s, err)
	}
	kv := chartutil.KubeVersion{
		Version: fmt.Sprintf("v%d.%d.%d", g.Major(), g.Minor(), g.Patch()),
		Major:   strconv.FormatUint(uint64(g.Major()), 10),
		Minor:   strconv.FormatUint(uint64(g.Minor()), 10),
	}
	if _, err := k8sversion.ParseSemantic(s); err == nil {
		kv.Version = "v" + strings.TrimPrefix(s, "v")
	}
	return kv, nil
}
