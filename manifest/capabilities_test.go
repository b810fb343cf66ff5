package manifest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadClusterCapabilities(t *testing.T) {
	m, err := Load(newRepo(t, "capabilities/valid-capabilities.yaml"), LoadOptions{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := []Cluster{
		{Name: "blue", Role: RoleActive, Context: "blue", KubeVersion: "v1.31.0",
			APIVersions: []string{"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor", "v1/Service", "v2"}},
		{Name: "green", Role: RoleStandby, Context: "green", KubeVersion: "1.30"},
		{Name: "purple", Role: RoleStandby, Context: "purple", KubeVersion: "v1.29.3-eks-adc7111", APIVersions: []string{}},
	}
	if diff := cmp.Diff(want, m.Clusters); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
}

func TestLoadInvalidClusterCapabilities(t *testing.T) {
	const notAPIVersion = " is not an API version: " + apiVersionHelp
	want := []Problem{
		at("clusters[0].kubeVersion", 4, "must be a string, got the number 1.31 (quote it if it is meant as a string)"),
		at("clusters[0].apiVersions[1]", 7, `"monitoring.coreos.com/v1" is listed twice (also clusters[0].apiVersions[0])`),
		at("clusters[0].apiVersions[2]", 8, `"monitoring.coreos.com"`+notAPIVersion),
		at("clusters[0].apiVersions[3]", 9, `"monitoring.coreos.com/v1/servicemonitor"`+notAPIVersion),
		at("clusters[0].apiVersions[4]", 10, `""`+notAPIVersion),
		at("clusters[0].apiVersions[5]", 11, `"a.b/v1/Kind/extra"`+notAPIVersion),
		at("clusters[0].apiVersions[6]", 12, `"Apps/v1"`+notAPIVersion),
		at("clusters[0].apiVersions[7]", 13, `"apps/Deployment"`+notAPIVersion),
		at("clusters[1].kubeVersion", 16, `"one.thirty" is not a Kubernetes version (e.g. v1.31.0 or "1.31")`),
		at("clusters[1].apiVersions", 17, `must be a list, got "monitoring.coreos.com/v1"`),
		at("clusters[2].kubeVersion", 20, `"1" is not a Kubernetes version (e.g. v1.31.0 or "1.31")`),
	}
	m, err := Load(newRepo(t, "capabilities/invalid-capabilities.yaml"), LoadOptions{})
	if m != nil {
		t.Errorf("Load returned a manifest along with %v", err)
	}
	if diff := cmp.Diff(want, problems(t, err)); diff != "" {
		t.Errorf("problems mismatch (-want +got):\n%s", diff)
	}
	if got := err.Error(); !strings.Contains(got, `tandem.yaml:16: clusters[1].kubeVersion: "one.thirty" is not a Kubernetes version`) {
		t.Errorf("error does not name file, line and field:\n%s", got)
	}
}

func TestIsAPIVersion(t *testing.T) {
	for s, want := range map[string]bool{
		"v1": true, "v1/Service": true, "apps/v1": true, "apps/v1/Deployment": true,
		"monitoring.coreos.com/v1": true, "monitoring.coreos.com/v1/ServiceMonitor": true,
		"networking.istio.io/v1alpha3/VirtualService": true, "autoscaling/v2beta2": true,
		"": false, "apps": false, "/v1": false, "apps/": false, "apps/v1/": false, "v1/service": false,
		"apps/Deployment": false, "Apps/v1": false, "apps/V1": false, "a/v1/K/x": false, "apps v1": false,
	} {
		if got := isAPIVersion(s); got != want {
			t.Errorf("isAPIVersion(%q) = %v, want %v", s, got, want)
		}
	}
}
