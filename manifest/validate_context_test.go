package manifest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLoadRefusesDuplicateContexts covers issue 8 item 5 (validation half): two clusters that
// would connect through the same kubeconfig context are one cluster, and reconciling it as
// both Active and Standby would scale the Active cluster to zero.
func TestLoadRefusesDuplicateContexts(t *testing.T) {
	const why = "two manifest clusters would be one cluster, reconciled as both Active and Standby; give each its own context"
	_, err := Load(newRepoWith(t, `clusters:
  - name: blue
    role: active
  - name: green
    role: standby
    context: blue
  - name: purple
    role: standby
    context: prod-east
  - name: prod-east
    role: standby
  - name: orange
    role: standby
    context: prod-east
  - name: green
    role: standby
releases:
  - name: web
    namespace: shop
    chart: ./charts/web
`), DefaultLoadOptions())
	want := []Problem{
		// An explicit context equal to another cluster's default one (its name).
		at("clusters[1].context", 6, `kubeconfig context "blue" is also the context of clusters[0] (blue): `+why),
		// A default context (the name) equal to an earlier explicit one.
		at("clusters[3].name", 10, `kubeconfig context "prod-east" (the cluster's name, as it sets no context) is also the context of clusters[2] (purple): `+why),
		// Two explicit contexts.
		at("clusters[4].context", 14, `kubeconfig context "prod-east" is also the context of clusters[2] (purple): `+why),
		// A duplicate name is reported as such, once, not again as a duplicate context.
		at("clusters[5].name", 15, `duplicate cluster name "green" (also clusters[1])`),
	}
	if diff := cmp.Diff(want, problems(t, err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestLoadDistinctContexts checks that distinct contexts, set or defaulted, load.
func TestLoadDistinctContexts(t *testing.T) {
	_, err := Load(newRepoWith(t, `clusters:
  - name: blue
    role: active
    context: prod-blue
  - name: green
    role: standby
  - name: prod-green
    role: standby
    context: blue
releases: []
`), DefaultLoadOptions())
	if err != nil {
		t.Fatalf("Load() = %v, want no error", err)
	}
}
