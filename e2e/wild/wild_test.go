package wild

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
)

const (
	reconcileTimeout = 10 * time.Minute
	diffTimeout      = 3 * time.Minute
)

// The documented JSON of reconcile and diff, as far as this test reads it.
type reconcileReport struct {
	Clusters []struct {
		Name     string `json:"name"`
		Error    string `json:"error"`
		Releases []struct {
			Name     string `json:"name"`
			Action   string `json:"action"`
			Outcome  string `json:"outcome"`
			Revision int    `json:"revision"`
		} `json:"releases"`
	} `json:"clusters"`
}

type diffReport struct {
	Clusters []struct {
		Name     string `json:"name"`
		Error    string `json:"error"`
		Releases []struct {
			Name    string   `json:"name"`
			Change  string   `json:"change"`
			Notes   []string `json:"notes"`
			Objects []struct {
				Kind   string `json:"kind"`
				Name   string `json:"name"`
				Change string `json:"change"`
				Diff   string `json:"diff"`
			} `json:"objects"`
		} `json:"releases"`
	} `json:"clusters"`
}

// changed lists "cluster/release" of every release a diff report changes.
func (r diffReport) changed(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, c := range r.Clusters {
		if c.Error != "" {
			t.Fatalf("cluster %s: %s", c.Name, c.Error)
		}
		for _, rel := range c.Releases {
			if rel.Change != "unchanged" {
				out = append(out, c.Name+"/"+rel.Name)
			}
		}
	}
	return out
}

type harness struct {
	t          *testing.T
	bin        string
	env        []string
	kubectl    string
	helm       string
	kubeconfig string
	repo       *e2etest.ManifestRepo
}

func newHarness(t *testing.T) *harness {
	env := clusters.Env(t)
	dir := filepath.Join(t.TempDir(), "manifest")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "manifest"))); err != nil {
		t.Fatal(err)
	}
	repo := &e2etest.ManifestRepo{Dir: dir}
	repo.Git(t, "init", "-q", "-b", "main")
	repo.Commit(t, "manifest")
	return &harness{t: t, bin: tandem.Path(t), kubectl: env.Tool("kubectl"), helm: env.Tool("helm"), kubeconfig: env.Kubeconfig(), repo: repo,
		env: []string{"KUBECONFIG=" + env.Kubeconfig(), "TANDEM_CACHE_DIR=" + filepath.Join(t.TempDir(), "cache"), "NO_COLOR=1"}}
}

func (h *harness) tandem(want int, timeout time.Duration, args ...string) e2etest.Result {
	h.t.Helper()
	res := e2etest.Run(h.t, h.bin, timeout, h.env, append(args, "--manifest-dir", h.repo.Dir)...)
	if res.Code != want {
		h.t.Fatalf("tandem %s: exit %d, want %d\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), res.Code, want, res.Stderr, res.Stdout)
	}
	return res
}

func (h *harness) reconcile() reconcileReport {
	h.t.Helper()
	var rep reconcileReport
	h.tandem(0, reconcileTimeout, "reconcile", "-o", "json").JSON(h.t, &rep)
	return rep
}

func (h *harness) run(bin string, args ...string) string {
	h.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+h.kubeconfig, "HELM_CACHE_HOME="+h.t.TempDir(), "HELM_CONFIG_HOME="+h.t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// secret returns a key of a live Secret (base64, as stored).
func (h *harness) secret(cluster, ns, name, key string) string {
	h.t.Helper()
	v := h.run(h.kubectl, "--context", cluster, "-n", ns, "get", "secret", name, "-o", "jsonpath={.data."+key+"}")
	if v == "" {
		h.t.Fatalf("%s: Secret %s/%s has no key %s", cluster, ns, name, key)
	}
	return v
}

// revision is a release's latest revision, from helm.
func (h *harness) revision(cluster, ns, release string) int {
	h.t.Helper()
	var ls []struct {
		Name     string `json:"name"`
		Revision string `json:"revision"`
	}
	if err := json.Unmarshal([]byte(h.run(h.helm, "--kube-context", cluster, "-n", ns, "ls", "-o", "json")), &ls); err != nil {
		h.t.Fatal(err)
	}
	for _, r := range ls {
		if r.Name == release {
			var n int
			if err := json.Unmarshal([]byte(r.Revision), &n); err != nil {
				h.t.Fatal(err)
			}
			return n
		}
	}
	h.t.Fatalf("%s: no release %s/%s", cluster, ns, release)
	return 0
}

type generatedValues map[string]string

// generated reads the values the charts generated, per cluster.
func (h *harness) generated() generatedValues {
	out := generatedValues{}
	for _, c := range []string{"blue", "green"} {
		out[c+" db password"] = h.secret(c, "data", "db", "password")
		out[c+" token"] = h.secret(c, "data", "token-token", "token")
		out[c+" token id"] = h.secret(c, "data", "token-token", "id")
	}
	return out
}

func (h *harness) wantRevisions(want map[string]int) {
	h.t.Helper()
	for _, c := range []string{"blue", "green"} {
		for rel, n := range want {
			ns := map[string]string{"db": "data", "token": "data", "widgets": "widgets", "web": "web"}[rel]
			if got := h.revision(c, ns, rel); got != n {
				h.t.Errorf("%s: release %s at revision %d, want %d", c, rel, got, n)
			}
		}
	}
}

func (h *harness) wantSame(before, after generatedValues) {
	h.t.Helper()
	for k, v := range before {
		if after[k] != v {
			h.t.Errorf("%s changed: the generated value was rotated", k)
		}
	}
}

// TestGeneratingChartsAreNoOps: charts that generate a password (kept through
// lookup, or not) reconcile as true no-ops, keep what their first install
// generated through an upgrade, diff clean live, and stay out of a pull
// request's plan for an unrelated change. CRDs of a chart's crds/ are
// installed by the first install and shown by render and diff.
func TestGeneratingChartsAreNoOps(t *testing.T) {
	h := newHarness(t)
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, func(t *testing.T) { h.t = t; f(t) }) {
			t.FailNow()
		}
		h.t = t
	}

	var first generatedValues
	step("install", func(t *testing.T) {
		h.reconcile()
		h.wantRevisions(map[string]int{"db": 1, "token": 1, "widgets": 1, "web": 1})
		first = h.generated()
		h.run(h.kubectl, "--context", "blue", "get", "crd", "widgets.wild.tandem.dev")
	})

	step("second and third reconcile create no revision", func(t *testing.T) {
		for i := range 2 {
			rep := h.reconcile()
			for _, c := range rep.Clusters {
				for _, r := range c.Releases {
					if r.Action != "unchanged" {
						t.Errorf("run %d: %s: release %s: action %s, want unchanged", i+2, c.Name, r.Name, r.Action)
					}
				}
			}
		}
		h.wantRevisions(map[string]int{"db": 1, "token": 1, "widgets": 1, "web": 1})
		h.wantSame(first, h.generated())
	})

	step("live diff is clean", func(t *testing.T) {
		res := h.tandem(0, diffTimeout, "diff", "--exit-code", "-o", "json")
		var rep diffReport
		res.JSON(t, &rep)
		if c := rep.changed(t); len(c) != 0 {
			t.Errorf("live diff reports %v:\n%s", c, res.Stdout)
		}
	})

	step("an unrelated pull request's plan is quiet", func(t *testing.T) {
		h.repo.Write(t, "values/web.yaml", "greeting: hello again\n")
		h.repo.Commit(t, "web: a new greeting")
		res := h.tandem(0, diffTimeout, "diff", "--against", "HEAD~1", "-o", "json")
		var rep diffReport
		res.JSON(t, &rep)
		if got := strings.Join(rep.changed(t), " "); got != "blue/web green/web" {
			t.Errorf("the plan changes %q, want only web on both clusters:\n%s", got, res.Stdout)
		}
		md := h.tandem(0, diffTimeout, "diff", "--against", "HEAD~1", "-o", "markdown").Stdout
		for _, rel := range []string{"db", "token", "widgets"} {
			if strings.Contains(md, "· "+rel+" ·") {
				t.Errorf("the comment mentions %s:\n%s", rel, md)
			}
		}
	})

	step("a values change upgrades and keeps the generated values", func(t *testing.T) {
		h.repo.Write(t, "values/db.yaml", "auth:\n  username: app2\n")
		h.repo.Replace(t, "tandem.yaml", "    chart: ./charts/token\n", "    chart: ./charts/token\n    set: {unused: \"1\"}\n")
		h.repo.Commit(t, "db: another user; token: a values change")
		h.reconcile()
		h.wantRevisions(map[string]int{"db": 2, "token": 2, "widgets": 1, "web": 2})
		h.wantSame(first, h.generated())
		h.reconcile()
		h.wantRevisions(map[string]int{"db": 2, "token": 2, "widgets": 1, "web": 2})
		h.tandem(0, diffTimeout, "diff", "--exit-code")
	})

	step("CRDs: render prints them, a change shows in the plan and the live diff", func(t *testing.T) {
		out := h.tandem(0, diffTimeout, "render", "--cluster", "blue", "--release", "widgets").Stdout
		if !strings.Contains(out, "# Source: widgets/crds/widgets.yaml\n") || !strings.Contains(out, "kind: CustomResourceDefinition") {
			t.Errorf("render lacks the CRD:\n%s", out)
		}
		h.repo.Replace(t, "charts/widgets/crds/widgets.yaml", "                size: {type: integer}\n", "                size: {type: integer}\n                color: {type: string}\n")
		h.repo.Commit(t, "widgets: a new CRD field")
		var plan diffReport
		h.tandem(0, diffTimeout, "diff", "--against", "HEAD~1", "-o", "json").JSON(t, &plan)
		if got := strings.Join(plan.changed(t), " "); got != "blue/widgets green/widgets" {
			t.Errorf("the plan changes %q, want widgets on both clusters", got)
		}
		var live diffReport
		h.tandem(2, diffTimeout, "diff", "--exit-code", "-o", "json").JSON(t, &live)
		if got := strings.Join(live.changed(t), " "); got != "blue/widgets green/widgets" {
			t.Errorf("the live diff changes %q, want widgets on both clusters", got)
		}
		for _, c := range live.Clusters {
			for _, r := range c.Releases {
				if r.Name == "widgets" && (len(r.Objects) != 1 || r.Objects[0].Kind != "CustomResourceDefinition" || !strings.Contains(r.Objects[0].Diff, "+              color:") ||
					len(r.Notes) == 0 || !strings.Contains(strings.Join(r.Notes, " "), "Helm never upgrades CRDs")) {
					t.Errorf("%s: widgets: %+v", c.Name, r)
				}
			}
		}
	})
}
