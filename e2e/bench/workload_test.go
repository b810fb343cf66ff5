package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
)

// workload is a synthetic manifest repository: n releases of one small chart
// (Deployment with 1 or 2 replicas, Service, ConfigMap, Ingress), each with its
// own values file, for clusters blue (active) and green (standby). The helm
// baseline installs the very same chart directory and values files.
type workload struct {
	repo      *e2etest.ManifestRepo
	releases  []string
	namespace string // the tandem side's release namespace
	// version counts commits; a side that applied version v is in sync with
	// the repository while version == v.
	version int
	changes int
}

// workloadOptions shape a synthetic manifest.
type workloadOptions struct {
	Releases  int
	Namespace string
	// StandbyKeep gives every release `standby: keep`, so green runs the same
	// replicas as blue (the helm baseline knows no Standby); otherwise the
	// default scale-to-zero applies on green.
	StandbyKeep bool
}

func newWorkload(tb testing.TB, opts workloadOptions) *workload {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "manifest")
	w := &workload{repo: &e2etest.ManifestRepo{Dir: dir}, namespace: opts.Namespace}
	if err := os.CopyFS(filepath.Join(dir, "charts", "svc"), os.DirFS(filepath.Join(e2etest.ModuleRoot(tb), "e2e", "testdata", "charts", "svc"))); err != nil {
		tb.Fatal(err)
	}
	var m strings.Builder
	m.WriteString("clusters:\n  - name: blue\n    role: active\n  - name: green\n    role: standby\n")
	m.WriteString("dns:\n  activeWeight: 100\nreleases:\n")
	for i := range opts.Releases {
		rel := fmt.Sprintf("svc-%03d", i)
		w.releases = append(w.releases, rel)
		fmt.Fprintf(&m, "  - name: %s\n    namespace: %s\n    chart: ./charts/svc\n    values: [values/%s.yaml]\n", rel, opts.Namespace, rel)
		if opts.StandbyKeep {
			m.WriteString("    standby: keep\n")
		}
		w.repo.Write(tb, w.valuesFile(rel), releaseValues(i, rel, "hello from "+rel))
	}
	w.repo.Write(tb, "tandem.yaml", m.String())
	w.repo.Git(tb, "init", "-q", "-b", "main")
	w.repo.Commit(tb, "synthetic manifest")
	return w
}

func (w *workload) valuesFile(rel string) string { return "values/" + rel + ".yaml" }

// path returns the absolute path of a file in the repository.
func (w *workload) path(rel string) string { return filepath.Join(w.repo.Dir, filepath.FromSlash(rel)) }

// changeOne gives the middle release a new greeting (its ConfigMap changes, and
// with the config checksum its Deployment rolls) and commits.
func (w *workload) changeOne(tb testing.TB) string {
	tb.Helper()
	i := len(w.releases) / 2
	rel := w.releases[i]
	w.changes++
	w.repo.Write(tb, w.valuesFile(rel), releaseValues(i, rel, fmt.Sprintf("changed %d", w.changes)))
	w.repo.Commit(tb, "change "+rel)
	w.version++
	return rel
}

func releaseValues(i int, rel, greeting string) string {
	return fmt.Sprintf("replicaCount: %d\nimage:\n  tag: \"1.%d.0\"\nhost: %s.shop.local\nconfig:\n  greeting: %s\n  slot: \"%d\"\n",
		1+i%2, i, rel, greeting, i)
}
