package house

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/tandem-gitops/tandem"

// imports lists the direct, non-test imports of every package of the module.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkgs[strings.TrimPrefix(f[0], module+"/")] = f[1:]
	}
	return pkgs
}

// TestHouseArrows: the leaves import no tandem package but internal ones;
// the daemon (cmd -> daemon -> reconciler) only the reconciler and the
// manifest types, the webhook handler nothing of tandem;
// Helm lives in render/ and clusters/ (and the chart copy they share);
// client-go in clusters/ only, but for the one interface Helm's lookup API
// makes render name.
func TestHouseArrows(t *testing.T) {
	pkgs := imports(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	leaves := map[string]bool{"manifest": true, "render": true, "clusters": true}
	for pkg, imps := range pkgs {
		for _, imp := range imps {
			tandem := strings.HasPrefix(imp, module+"/")
			target := strings.TrimPrefix(imp, module+"/")
			switch {
			case leaves[pkg] && tandem && !strings.HasPrefix(target, "internal/"):
				t.Errorf("%s imports %s: the leaves (manifest, render, clusters) never import each other or the reconciler", pkg, target)
			case pkg == "reconciler" && tandem && strings.HasPrefix(target, "cmd"):
				t.Errorf("reconciler imports %s: arrows point from cmd to the reconciler", target)
			case pkg == "daemon" && tandem && target != "reconciler" && target != "manifest" && !strings.HasPrefix(target, "internal/"):
				t.Errorf("daemon imports %s: the daemon drives the reconciler's pipeline; concrete parts come in from cmd", target)
			case pkg == "webhook" && tandem:
				t.Errorf("webhook imports %s: it verifies HTTP requests and needs nothing of tandem", target)
			case strings.HasPrefix(imp, "helm.sh/") && pkg != "render" && pkg != "clusters" && !strings.HasPrefix(pkg, "internal/helmchart") && !strings.HasPrefix(pkg, "hack/"):
				t.Errorf("%s imports %s: Helm lives in render/ and clusters/ only", pkg, imp)
			case strings.HasPrefix(imp, "k8s.io/client-go") && pkg != "clusters" && !strings.HasPrefix(pkg, "e2e/") &&
				!(pkg == "render" && imp == "k8s.io/client-go/dynamic"):
				t.Errorf("%s imports %s: client-go lives in clusters/ only", pkg, imp)
			}
		}
	}
}
