package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// runCLI runs the command tree in-process.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	t.Setenv("TANDEM_CACHE_DIR", t.TempDir())
	code = run(context.Background(), args, streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	return out.String(), errb.String(), code
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/tandem/ -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got); rerun with -update if intended:\n%s", path, diff)
	}
}

// TestRenderExamplesGolden pins what `tandem render` prints for the example
// manifest on each cluster.
func TestRenderExamplesGolden(t *testing.T) {
	for _, cluster := range []string{"blue", "green"} {
		t.Run(cluster, func(t *testing.T) {
			out, errOut, code := runCLI(t, "render", "--manifest-dir", "../../examples/manifest", "--cluster", cluster)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, "render-"+cluster+".golden.yaml", out)
		})
	}
}

// TestRenderGreenIsStandby checks the acceptance for green: the Example
// app at 0 replicas with weight "0" and set-identifier green, platform at its
// real replica count, and no other release; and for blue: every release at its
// real count with weight 100.
func TestRenderGreenIsStandby(t *testing.T) {
	green, _, code := runCLI(t, "render", "--manifest-dir", "../../examples/manifest", "--cluster", "green", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	blue, _, code := runCLI(t, "render", "--manifest-dir", "../../examples/manifest", "--cluster", "blue", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	type obj = map[string]any
	for _, tc := range []struct {
		out      string
		releases []string
		replicas map[string]float64 // Deployment/StatefulSet name -> replicas
		weight   string
		setID    string
	}{
		{green, []string{"platform", "example"}, map[string]float64{"platform-edge": 2, "example": 0}, "0", "green"},
		{blue, []string{"platform", "cache", "example", "storefront", "orders-worker"},
			map[string]float64{"platform-edge": 2, "cache": 3, "example": 3, "storefront": 3, "orders-worker": 2}, "100", "blue"},
	} {
		var rendered []struct {
			Release string `json:"release"`
			Objects []obj  `json:"objects"`
		}
		decodeJSON(t, tc.out, &rendered)
		var releases []string
		replicas := map[string]float64{}
		for _, r := range rendered {
			releases = append(releases, r.Release)
			for _, o := range r.Objects {
				md := o["metadata"].(obj)
				switch o["kind"] {
				case "Deployment", "StatefulSet":
					replicas[md["name"].(string)] = o["spec"].(obj)["replicas"].(float64)
				case "Ingress":
					ann := md["annotations"].(obj)
					if ann["external-dns.alpha.kubernetes.io/aws-weight"] != tc.weight || ann["external-dns.alpha.kubernetes.io/set-identifier"] != tc.setID {
						t.Errorf("%s Ingress %s: annotations %v, want weight %q set-identifier %q", tc.setID, md["name"], ann, tc.weight, tc.setID)
					}
				}
			}
		}
		if diff := cmp.Diff(tc.releases, releases); diff != "" {
			t.Errorf("%s releases (-want +got):\n%s", tc.setID, diff)
		}
		if diff := cmp.Diff(tc.replicas, replicas); diff != "" {
			t.Errorf("%s replicas (-want +got):\n%s", tc.setID, diff)
		}
	}
}

func TestValidatePrintsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tandem.yaml"), []byte(`clusters:
  - name: blue
    role: standby
  - name: blue
    role: primary
dns:
  activeWeight: 300
releases:
  - name: web
    namespace: shop
    chart: ./charts/missing
    needs: [db]
    colour: red
`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "validate", "--manifest-dir", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"clusters[1].name", "clusters[1].role", "dns.activeWeight", "releases[0].chart", "releases[0].needs[0]", "releases[0].colour"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("validate output does not mention %q:\n%s", want, errOut)
		}
	}
	if n := strings.Count(errOut, "tandem.yaml"); n < 6 {
		t.Errorf("want every problem on its own line naming the file, got %d lines:\n%s", n, errOut)
	}
}

func TestValidateNeedsAnActiveCluster(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tandem.yaml"), []byte("clusters:\n  - name: blue\n    role: standby\nreleases: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "validate", "--manifest-dir", dir)
	if code != 1 || !strings.Contains(errOut, "no cluster has role active") {
		t.Fatalf("exit %d, output:\n%s", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	out, _, code := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "tandem ") {
		t.Fatalf("exit %d, output %q", code, out)
	}
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, s)
	}
}
