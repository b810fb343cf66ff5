package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// brokenManifest is a manifest whose one release fails to render on both
// clusters: its chart requires a value nobody sets.
func brokenManifest(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"tandem.yaml": `clusters:
  - name: blue
    role: active
  - name: green
    role: standby
releases:
  - name: web
    namespace: shop
    chart: ./charts/web
`,
		"charts/web/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"charts/web/templates/cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: web
data:
  greeting: {{ required "values.greeting is required" .Values.greeting }}
`,
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRenderErrorsOnePerLine covers issue 8 item 9 (errors): every problem
// is one line naming its cluster and release, not go-multierror's
// "2 errors occurred:\n\t* ..." list.
func TestRenderErrorsOnePerLine(t *testing.T) {
	_, errOut, code := runCLI(t, "render", "--manifest-dir", brokenManifest(t))
	if code != exitFailure {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitFailure, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per failed render (2), got %d:\n%s", len(lines), errOut)
	}
	for i, cluster := range []string{"blue", "green"} {
		l := lines[i]
		if !strings.HasPrefix(l, `error: cluster "`+cluster+`": release "`) || !strings.Contains(l, "web") ||
			!strings.HasSuffix(l, "values.greeting is required") {
			t.Errorf("line %d = %q, want `error: cluster %q: release ... web ...: ... values.greeting is required`", i+1, l, cluster)
		}
	}
	if strings.Contains(errOut, "occurred") || strings.Contains(errOut, "\t*") {
		t.Errorf("stderr has go-multierror's wrapper:\n%s", errOut)
	}
}

func TestPrintError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"one", errors.New(`cluster "blue": unreachable`), "error: cluster \"blue\": unreachable\n"},
		{"joined", errors.Join(errors.New(`cluster "blue": release "shop/web": boom`), nil, errors.New(`cluster "green": release "shop/web": boom`)),
			"error: cluster \"blue\": release \"shop/web\": boom\nerror: cluster \"green\": release \"shop/web\": boom\n"},
		{"indented details stay with their line", errors.New("1 of 2 clusters failed (blue)\n  blue: lock lost\n"),
			"error: 1 of 2 clusters failed (blue)\n  blue: lock lost\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			printError(&b, tc.err)
			if diff := cmp.Diff(tc.want, b.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
