package manifest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReleasesFor(t *testing.T) {
	m, err := Load(newRepo(t, "valid-full.yaml"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keys := func(rs []Release) []string {
		if rs == nil {
			return nil
		}
		out := []string{}
		for _, r := range rs {
			out = append(out, r.Key())
		}
		return out
	}
	tests := []struct {
		cluster string
		want    []string
	}{
		{"blue", []string{"shop/web", "shop/api", "platform/api"}},
		// green lists web, shop/api, platform/api: manifest order, whatever the list's order.
		{"green", []string{"shop/web", "shop/api", "platform/api"}},
		{"purple", []string{}},
		{"nope", nil},
	}
	for _, tt := range tests {
		t.Run(tt.cluster, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, keys(m.ReleasesFor(tt.cluster))); diff != "" {
				t.Errorf("ReleasesFor(%q) mismatch (-want +got):\n%s", tt.cluster, diff)
			}
		})
	}

	t.Run("staged subset in manifest order", func(t *testing.T) {
		m := &Manifest{
			Clusters: []Cluster{{Name: "green", Releases: []string{"c", "a"}}},
			Releases: []Release{{Name: "a", Namespace: "n"}, {Name: "b", Namespace: "n"}, {Name: "c", Namespace: "n"}},
		}
		if diff := cmp.Diff([]string{"n/a", "n/c"}, keys(m.ReleasesFor("green"))); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("result does not alias the manifest", func(t *testing.T) {
		rs := m.ReleasesFor("blue")
		rs[0].Name = "changed"
		if m.Releases[0].Name != "web" {
			t.Error("changing ReleasesFor's result changed the manifest")
		}
	})
}

func TestCluster(t *testing.T) {
	m := &Manifest{Clusters: []Cluster{{Name: "blue", Role: RoleActive}, {Name: "green", Role: RoleStandby}}}
	if c, ok := m.Cluster("green"); !ok || c.Role != RoleStandby {
		t.Errorf("Cluster(green) = %+v, %v", c, ok)
	}
	if _, ok := m.Cluster("purple"); ok {
		t.Error("Cluster(purple) found a cluster")
	}
}

func TestReleaseHelpers(t *testing.T) {
	tests := []struct {
		r       Release
		key     string
		local   bool
		timeout time.Duration
	}{
		{Release{Name: "web", Namespace: "shop", Chart: "./charts/web", Timeout: "90s"}, "shop/web", true, 90 * time.Second},
		{Release{Name: "root", Namespace: "x", Chart: "."}, "x/root", true, 5 * time.Minute},
		{Release{Name: "api", Namespace: "shop", Chart: "bitnami/nginx", Timeout: "1h"}, "shop/api", false, time.Hour},
		{Release{Name: "oci", Namespace: "shop", Chart: "oci://r.example.com/c", Timeout: "bogus"}, "shop/oci", false, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := tt.r.Key(); got != tt.key {
				t.Errorf("Key() = %q, want %q", got, tt.key)
			}
			if got := tt.r.Local(); got != tt.local {
				t.Errorf("Local() = %v, want %v", got, tt.local)
			}
			if got := tt.r.TimeoutDuration(); got != tt.timeout {
				t.Errorf("TimeoutDuration() = %v, want %v", got, tt.timeout)
			}
		})
	}
}
