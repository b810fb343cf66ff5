package clusters

import (
	"context"
	"fmt"
	"slices"
)

// Capabilities are what Helm's templates see of a cluster in .Capabilities:
// the server's version and every API version it serves (CRDs included), as
// discovered when connected. They are plain data, so that the reconciler can
// hand them to a render and record them in the state record for offline
// work (a diff in CI without credentials) to reuse.
type Capabilities struct {
	// KubeVersion is the server's git version, e.g. "v1.31.2" or
	// "v1.29.3-eks-adc7111".
	KubeVersion string `json:"kubeVersion"`
	// APIVersions are the served "group/version" and "group/version/Kind"
	// entries ("v1", "v1/Service", "apps/v1/Deployment"), sorted. They are
	// the cluster's complete set.
	APIVersions []string `json:"apiVersions"`
}

// Capabilities returns the cluster's capabilities from the discovery cache
// Helm's installs use, so that a render sees exactly what an install on this
// Cluster would. The cache is reset when an install adds CRDs, so kinds
// installed since show up.
func (c *Cluster) Capabilities(ctx context.Context) (Capabilities, error) {
	caps, err := c.capabilities(ctx)
	if err != nil {
		return Capabilities{}, fmt.Errorf("cluster %q: capabilities: %w", c.name, err)
	}
	versions := slices.Clone(caps.APIVersions)
	slices.Sort(versions)
	return Capabilities{KubeVersion: caps.KubeVersion.Version, APIVersions: slices.Compact(versions)}, nil
}
