package drift

import (
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var (
	clusters = localcluster.NewSuite(localcluster.DefaultOptions())
	tandem   e2etest.Binary
)

func TestMain(m *testing.M) {
	code := clusters.Run(m)
	tandem.Cleanup()
	os.Exit(code)
}

// Bounds for one run of the binary on a busy 2-core machine.
const (
	reconcileTimeout = 10 * time.Minute
	diffTimeout      = 3 * time.Minute
)

// runner runs the tandem binary with a fixed environment.
type runner struct {
	bin string
	env []string
}

// newRunner builds the binary (once) and gives t a private chart cache, and
// KUBECONFIG set to kubeconfig ("" for a file that does not exist, to prove a
// command needs no cluster).
func newRunner(t *testing.T, kubeconfig string) runner {
	t.Helper()
	if testing.Short() {
		t.Skip("-short skips the end-to-end tests, which build and run the tandem binary")
	}
	if kubeconfig == "" {
		kubeconfig = filepath.Join(t.TempDir(), "no-such-kubeconfig")
	}
	return runner{
		bin: tandem.Path(t),
		env: []string{
			"KUBECONFIG=" + kubeconfig,
			"TANDEM_CACHE_DIR=" + filepath.Join(t.TempDir(), "cache"),
			"NO_COLOR=1",
			// CI may set these; the comment test passes its own.
			"GITHUB_API_URL=", "GITHUB_TOKEN=",
		},
	}
}

func (r runner) run(t *testing.T, timeout time.Duration, args ...string) e2etest.Result {
	t.Helper()
	return e2etest.Run(t, r.bin, timeout, r.env, args...)
}

func (r runner) with(env ...string) runner {
	return runner{bin: r.bin, env: append(append([]string(nil), r.env...), env...)}
}

// wantCode fails the test when a run ended with another exit code.
func wantCode(t *testing.T, res e2etest.Result, want int) {
	t.Helper()
	if res.Code != want {
		t.Fatalf("exit code %d, want %d\nstderr:\n%s\nstdout:\n%s", res.Code, want, res.Stderr, res.Stdout)
	}
}

// The documented JSON of `tandem diff -o json`, as far as these tests read it.
// Declared here rather than imported so that a change to the schema fails a test.
type diffReport struct {
	Mode     string        `json:"mode"`
	From     string        `json:"from"`
	To       string        `json:"to"`
	Clusters []clusterDiff `json:"clusters"`
}

type clusterDiff struct {
	Name     string        `json:"name"`
	Role     string        `json:"role"`
	Error    string        `json:"error"`
	Releases []releaseDiff `json:"releases"`
}

type releaseDiff struct {
	Name      string       `json:"name"`
	Namespace string       `json:"namespace"`
	Change    string       `json:"change"`
	Notes     []string     `json:"notes"`
	Objects   []objectDiff `json:"objects"`
}

type objectDiff struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Change     string `json:"change"`
	Diff       string `json:"diff"`
}

func (o objectDiff) id() string { return o.Kind + " " + o.Namespace + "/" + o.Name }

// object returns a changed object of a changed release by "Kind namespace/name".
func (c clusterDiff) object(t *testing.T, release, id string) objectDiff {
	t.Helper()
	for _, r := range c.changed() {
		for _, o := range r.Objects {
			if r.Name == release && o.id() == id {
				return o
			}
		}
	}
	t.Fatalf("cluster %s: release %s has no changed object %s", c.Name, release, id)
	return objectDiff{}
}

func (r diffReport) cluster(t *testing.T, name string) clusterDiff {
	t.Helper()
	for _, c := range r.Clusters {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("report has no cluster %q", name)
	return clusterDiff{}
}

// changed returns the releases that differ.
func (c clusterDiff) changed() []releaseDiff {
	var out []releaseDiff
	for _, r := range c.Releases {
		if r.Change != "unchanged" {
			out = append(out, r)
		}
	}
	return out
}

// changedNames lists "release change: object change, ..." per changed release,
// objects sorted, for messages and comparisons.
func (c clusterDiff) changedNames() []string {
	var out []string
	for _, r := range c.changed() {
		var objs []string
		for _, o := range r.Objects {
			objs = append(objs, o.id()+" "+o.Change)
		}
		sort.Strings(objs)
		out = append(out, r.Name+" "+r.Change+": "+strings.Join(objs, ", "))
	}
	return out
}

// diffMarks returns a unified diff's removed and added lines, without their markers.
func diffMarks(diff string) (removed, added []string) {
	for _, l := range strings.Split(diff, "\n") {
		switch {
		case strings.HasPrefix(l, "-"):
			removed = append(removed, l[1:])
		case strings.HasPrefix(l, "+"):
			added = append(added, l[1:])
		}
	}
	return removed, added
}

// The documented JSON of `tandem reconcile -o json`, as far as these tests read it.
type reconcileReport struct {
	Commit   string `json:"commit"`
	Clusters []struct {
		Name     string          `json:"name"`
		Role     string          `json:"role"`
		Error    string          `json:"error"`
		Releases []releaseReport `json:"releases"`
		Counts   struct {
			Drifted   int `json:"drifted"`
			Corrected int `json:"corrected"`
		} `json:"counts"`
	} `json:"clusters"`
}

type releaseReport struct {
	Name         string   `json:"name"`
	Namespace    string   `json:"namespace"`
	Action       string   `json:"action"`
	Outcome      string   `json:"outcome"`
	FromRevision int      `json:"fromRevision"`
	Revision     int      `json:"revision"`
	Drifted      []string `json:"drifted"`
	Corrected    []string `json:"corrected"`
	DriftCheck   string   `json:"driftCheck"`
	Error        string   `json:"error"`
}

// releases returns cluster → release → its report.
func (r reconcileReport) releases() map[string]map[string]releaseReport {
	out := map[string]map[string]releaseReport{}
	for _, c := range r.Clusters {
		out[c.Name] = map[string]releaseReport{}
		for _, rel := range c.Releases {
			out[c.Name][rel.Name] = rel
		}
	}
	return out
}

// unclosedFence reports the opening line of a Markdown code fence (``` or
// longer, CommonMark rules) that is never closed, or "" when all are.
func unclosedFence(md string) string {
	open, openLine := 0, ""
	for _, l := range strings.Split(md, "\n") {
		indent := len(l) - len(strings.TrimLeft(l, " "))
		if indent > 3 {
			continue
		}
		s := strings.TrimLeft(l, " ")
		ticks := len(s) - len(strings.TrimLeft(s, "`"))
		if ticks < 3 {
			continue
		}
		switch {
		case open == 0:
			open, openLine = ticks, l
		case ticks >= open && strings.TrimSpace(s[ticks:]) == "":
			open, openLine = 0, ""
		}
	}
	return openLine
}
