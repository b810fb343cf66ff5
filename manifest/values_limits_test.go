package manifest

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLoadValuesReferenceBounds covers issue 11 item 7: a manifest that
// references one values file 50,000 times, or one release whose values add
// up past the bound, is refused with a problem naming the release, before
// anything reads and merges them per cluster.
func TestLoadValuesReferenceBounds(t *testing.T) {
	t.Run("one file referenced 50,000 times", func(t *testing.T) {
		refs := strings.TrimSuffix(strings.Repeat("values/common.yaml, ", 50000), ", ")
		dir := newRepoWith(t, "clusters: [{name: blue, role: active}]\nreleases:\n- {name: web, namespace: shop, chart: ./charts/web, values: ["+refs+"]}\n")
		_, err := Load(dir, LoadOptions{})
		want := []Problem{at("releases[0].values", 3, `release "shop/web": the manifest references values files more than 10000 times (each reference of a file counts)`)}
		if diff := cmp.Diff(want, problems(t, err)); diff != "" {
			t.Errorf("problems mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("a release's values over MaxReleaseValuesBytes", func(t *testing.T) {
		dir := newRepoWith(t, "clusters: [{name: blue, role: active}]\nreleases:\n"+
			"- {name: web, namespace: shop, chart: ./charts/web, values: [values/big.yaml, values/big.yaml], clusters: {blue: {values: [values/big.yaml]}}}\n"+
			"- {name: api, namespace: shop, chart: ./charts/web, values: [values/big.yaml]}\n")
		writeFile(t, filepath.Join(dir, "values", "big.yaml"), "a: "+strings.Repeat("x", 997)+"\n")
		_, err := Load(dir, LoadOptions{MaxReleaseValuesBytes: 2500})
		want := []Problem{at("releases[0].values", 3, `release "shop/web": its values files add up to 3003 bytes, each counted as often as it is referenced (cluster overlays included); the limit is 2500`)}
		if diff := cmp.Diff(want, problems(t, err)); diff != "" {
			t.Errorf("problems mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("the manifest's values over MaxValuesBytes", func(t *testing.T) {
		dir := newRepoWith(t, "clusters: [{name: blue, role: active}]\nreleases:\n"+
			"- {name: web, namespace: shop, chart: ./charts/web, values: [values/big.yaml]}\n"+
			"- {name: api, namespace: shop, chart: ./charts/web, values: [values/big.yaml, values/big.yaml]}\n"+
			"- {name: db, namespace: shop, chart: ./charts/web, values: [values/big.yaml]}\n")
		writeFile(t, filepath.Join(dir, "values", "big.yaml"), "a: "+strings.Repeat("x", 997)+"\n")
		_, err := Load(dir, LoadOptions{MaxValuesBytes: 2500})
		want := []Problem{at("releases[1].values", 4, `release "shop/api": the manifest's values files add up to more than 2500 bytes, each counted as often as it is referenced`)}
		if diff := cmp.Diff(want, problems(t, err)); diff != "" {
			t.Errorf("problems mismatch (-want +got):\n%s", diff)
		}
	})
}
