package clusters

import (
	"slices"
	"testing"
)

// TestCapabilities: the server's version and served API versions, kinds
// included, and a CRD's once an install has added it.
func TestCapabilities(t *testing.T) {
	ctx, c, e := connect(t)
	caps, err := c.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := adminClient(t, e).Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if caps.KubeVersion != v.GitVersion {
		t.Errorf("KubeVersion %q, want the server's %q", caps.KubeVersion, v.GitVersion)
	}
	for _, want := range []string{"v1", "v1/Secret", "apps/v1", "apps/v1/Deployment", "apiextensions.k8s.io/v1/CustomResourceDefinition"} {
		if !slices.Contains(caps.APIVersions, want) {
			t.Errorf("APIVersions lack %q", want)
		}
	}
	if !slices.IsSorted(caps.APIVersions) {
		t.Error("APIVersions are not sorted")
	}
	const widget = "capabilities.tandem.dev/v1/Widget"
	if slices.Contains(caps.APIVersions, widget) {
		t.Fatalf("%s served before the CRD is installed", widget)
	}
	caps.APIVersions[0] = "changed by the caller"
	again, err := c.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.APIVersions[0] == "changed by the caller" {
		t.Error("Capabilities hands out the cached slice")
	}

	deleteCRDAtCleanup(t, e, "widgets.capabilities.tandem.dev")
	if _, err := c.Install(ctx, ReleaseRequest{Name: "widgets", Namespace: testNamespace(t), Chart: loadChart(t, "widgets")}); err != nil {
		t.Fatal(err)
	}
	after, err := c.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"capabilities.tandem.dev/v1", widget} {
		if !slices.Contains(after.APIVersions, want) {
			t.Errorf("after installing the CRD, APIVersions lack %q", want)
		}
	}
}
