package reconciler

import "github.com/tandem-gitops/tandem/manifest"

// ReleaseKey identifies a release on a cluster. Helm release names are
// unique per namespace only, so every map and lookup of a run is keyed by
// both: two releases "redis" in team-a and team-b are two releases.
type ReleaseKey struct{ Namespace, Name string }

func (k ReleaseKey) String() string { return k.Namespace + "/" + k.Name }

func keyOfRelease(r manifest.Release) ReleaseKey { return ReleaseKey{r.Namespace, r.Name} }

// manifestResolver resolves a reference in `needs` to its release.
type manifestResolver interface {
	Resolve(ref string) (manifest.Release, bool)
}

var _ manifestResolver = (*manifest.Manifest)(nil)
