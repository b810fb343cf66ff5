package manifest

import "testing"

// TestDropUnreviewedCredentialsRegistryLogin: a pull request that adds an OCI repository, or an
// oci:// chart no reviewed release names, gets no credentials from the runner's registry login
// (Helm's or Docker's config), so it cannot read a private chart into its plan; what the base
// revision already pulls keeps them.
func TestDropUnreviewedCredentialsRegistryLogin(t *testing.T) {
	base := &Manifest{
		Repositories: []Repository{{Name: "charts", URL: "oci://registry.example.com/charts"}, {Name: "moved", URL: "oci://registry.example.com/a"}},
		Releases:     []Release{{Name: "web", Chart: "charts/web"}, {Name: "db", Chart: "oci://registry.example.com/db"}},
	}
	pr := &Manifest{
		Repositories: []Repository{
			{Name: "charts", URL: "oci://registry.example.com/charts"},
			{Name: "moved", URL: "oci://registry.example.com/private"},
			{Name: "added", URL: "oci://registry.example.com/private"},
		},
		Releases: []Release{
			{Name: "web", Chart: "charts/web"},
			{Name: "db", Chart: "oci://registry.example.com/db"},
			{Name: "steal", Chart: "oci://registry.example.com/private/secret"},
		},
	}
	if got := pr.DropUnreviewedCredentials(base); len(got) != 0 {
		t.Errorf("dropped %v: no repository has credentials of its own", got)
	}
	for _, tc := range []struct {
		repo  string
		chart string
		want  bool
	}{
		{"charts", "charts/web", true},
		{"moved", "moved/x", false},
		{"added", "added/x", false},
		{"", "oci://registry.example.com/db", true},
		{"", "oci://registry.example.com/private/secret", false},
	} {
		if got := pr.RegistryLogin(tc.repo, Release{Chart: tc.chart}); got != tc.want {
			t.Errorf("RegistryLogin(%q, %q) = %v, want %v", tc.repo, tc.chart, got, tc.want)
		}
	}
	if !base.RegistryLogin("", Release{Chart: "oci://anything.example.com/x"}) {
		t.Error("a manifest DropUnreviewedCredentials never ran on withholds the registry login")
	}
}
