package bench

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Namespaces of the two sides of BenchmarkReconcile: the same release names in
// each, so they never touch each other's objects or Helm releases.
const (
	nsTandem = "bench-tandem"
	nsHelm   = "bench-helm"
)

// BenchmarkReconcile compares `tandem reconcile` with the helm baseline (see
// the package documentation) on TANDEM_BENCH_RELEASES synthetic releases
// (default 50) × two clusters, every release with `standby: keep` so that
// green runs the same workloads on both sides. Both sides wait for health:
// helm with --wait, tandem with its health gates. Scenarios:
//
//	cold            first install into empty namespaces
//	no-op           nothing changed, tandem with its defaults (drift detection on)
//	no-op-again     a second no-op: the drift check has a record from the first and
//	                dry-runs only objects whose resourceVersion moved
//	no-op-no-drift  the same with --detect-drift=false (helm's no-op run is the baseline)
//	one-changed     one release's values changed
//
// TANDEM_BENCH_HELM=0 leaves the helm baseline out (at 1,000 releases it
// takes the better part of an hour).
//
// Each side's sub-benchmark reports its wall time as ns/op and, as metrics,
// the API requests counted by the proxies, new Helm revisions, peak RSS,
// client CPU and the CPU the control planes used meanwhile (in all and by
// component, both clusters summed); tandem's also reports the ratios
// baseline/tandem. A Markdown table of everything is printed at the end,
// with where the machine's CPU went.
func BenchmarkReconcile(b *testing.B) {
	h := newHarness(b)
	w := newWorkload(b, workloadOptions{Releases: releaseCount(b), Namespace: nsTandem, StandbyKeep: true})
	h.deleteNamespaces(b, nsTandem, nsHelm)
	b.Cleanup(func() { h.deleteNamespaces(b, nsTandem, nsHelm) })

	rb := &reconcileBench{h: h, w: w, applied: map[string]int{sideHelm: -1, sideTandem: -1}}
	withHelm := os.Getenv("TANDEM_BENCH_HELM") != "0"
	for _, sc := range []struct {
		name, title string
		helm        bool
		flags       []string
		prepare     func(b *testing.B, side string)
		label       string // tandem's side in the table, when flags don't say it
	}{
		{"cold", "(a) cold install", true, nil, rb.clean, ""},
		{"no-op", "(b) no-op re-run", true, nil, rb.sync, "tandem, first no-op after the install"},
		{"no-op-again", "(b) no-op re-run", false, nil, rb.sync, "tandem, a later no-op"},
		{"no-op-no-drift", "(b) no-op re-run", false, []string{"--detect-drift=false"}, rb.sync, ""},
		{"one-changed", "(c) one release changed", true, nil, rb.changeOne, ""},
		{"one-changed-no-drift", "(c) one release changed", false, []string{"--detect-drift=false"}, rb.changeOne, ""},
	} {
		b.Run(sc.name, func(b *testing.B) {
			if sc.helm && withHelm {
				b.Run(sideHelm, func(b *testing.B) {
					m := rb.measure(b, sideHelm, sc.prepare, nil)
					rb.add(sc.title, sideHelm, m)
					reportMetrics(b, m)
				})
			}
			b.Run(sideTandem, func(b *testing.B) {
				m := rb.measure(b, sideTandem, sc.prepare, sc.flags)
				side := "tandem"
				if len(sc.flags) > 0 {
					side += ", `" + strings.Join(sc.flags, " ") + "`"
				}
				if sc.label != "" {
					side = sc.label
				}
				rb.add(sc.title, side, m)
				reportMetrics(b, m)
				if base, ok := rb.baseline(sc.title); ok {
					b.ReportMetric(base.wall.Seconds()/m.wall.Seconds(), "speedup-x")
					b.ReportMetric(float64(base.requests.total())/float64(max(1, m.requests.total())), "api-req-ratio-x")
				}
			})
		})
	}
	rb.printTable()
}

const (
	sideHelm   = "helm"
	sideTandem = "tandem"
)

type reconcileBench struct {
	h *harness
	w *workload
	// applied is the workload version each side last applied, -1 for none.
	applied map[string]int
	rows    []row
}

type row struct {
	scenario, side string
	m              measurement
}

// add records a side's result; a sub-benchmark the framework runs again
// (a larger b.N) replaces its earlier row.
func (rb *reconcileBench) add(scenario, side string, m measurement) {
	for i, r := range rb.rows {
		if r.scenario == scenario && r.side == side {
			rb.rows[i].m = m
			return
		}
	}
	rb.rows = append(rb.rows, row{scenario, side, m})
}

// baseline is the helm row of a scenario; the no-drift variants share the
// baseline of their scenario.
func (rb *reconcileBench) baseline(scenario string) (measurement, bool) {
	for _, r := range rb.rows {
		if r.side == sideHelm && r.scenario == scenario {
			return r.m, true
		}
	}
	return measurement{}, false
}

func (rb *reconcileBench) namespace(side string) string {
	if side == sideHelm {
		return nsHelm
	}
	return nsTandem
}

// measure runs one side b.N times, each after prepare (untimed), and returns
// the mean.
func (rb *reconcileBench) measure(b *testing.B, side string, prepare func(*testing.B, string), flags []string) measurement {
	b.StopTimer()
	var sum measurement
	for range b.N {
		prepare(b, side)
		before := rb.h.revisions(b, rb.namespace(side))
		cpuBefore := rb.h.cpuSample(b)
		b.StartTimer()
		m := rb.apply(b, side, flags)
		b.StopTimer()
		m.elsewhere = rb.h.cpuSample(b).since(cpuBefore)
		m.revisions = newRevisions(before, rb.h.revisions(b, rb.namespace(side)))
		sum = sum.add(m)
	}
	return sum.mean(b.N)
}

// apply runs one side on the workload as it is now.
func (rb *reconcileBench) apply(b *testing.B, side string, flags []string) measurement {
	var m measurement
	if side == sideHelm {
		m = rb.h.helmBaseline(b, rb.w, nsHelm)
	} else {
		var rep tandemReport
		m, rep = rb.h.reconcile(b, rb.w.repo.Dir, flags...)
		for _, c := range rep.Clusters {
			b.Logf("tandem %s: installed %d, upgraded %d, unchanged %d", c.Name, c.Counts.Installed, c.Counts.Upgraded, c.Counts.Unchanged)
		}
	}
	rb.applied[side] = rb.w.version
	return m
}

// clean prepares a cold install: the side's namespace is gone on both clusters.
func (rb *reconcileBench) clean(b *testing.B, side string) {
	rb.h.deleteNamespaces(b, rb.namespace(side))
	rb.applied[side] = -1
}

// sync makes sure the side has applied the workload as it is now.
func (rb *reconcileBench) sync(b *testing.B, side string) {
	if rb.applied[side] != rb.w.version {
		b.Logf("%s: bringing the side up to date first (not measured)", side)
		rb.apply(b, side, nil)
	}
}

// changeOne syncs the side, then changes one release.
func (rb *reconcileBench) changeOne(b *testing.B, side string) {
	rb.sync(b, side)
	rb.w.changeOne(b)
}

func reportMetrics(b *testing.B, m measurement) {
	b.ReportMetric(float64(m.requests.total()), "api-req/op")
	b.ReportMetric(float64(m.revisions), "new-revisions/op")
	b.ReportMetric(float64(m.peakRSS)/1024, "peak-rss-MiB")
	b.ReportMetric(m.cpu.Seconds(), "client-cpu-s/op")
	if cp, ok := m.elsewhere.controlPlanes(); ok {
		b.ReportMetric(cp.Seconds(), "control-plane-cpu-s/op")
		for _, c := range m.elsewhere.components {
			b.ReportMetric(c.cpu.Seconds(), c.name+"-cpu-s/op")
		}
	}
}

func (rb *reconcileBench) printTable() {
	if len(rb.rows) == 0 {
		return
	}
	var t strings.Builder
	fmt.Fprintf(&t, "\n%d releases × 2 clusters (blue active, green standby, every release `standby: keep`); %s\n\n",
		len(rb.w.releases), machine())
	t.WriteString("| scenario | side | wall | API requests | new revisions | peak RSS | client CPU | control planes' CPU | ratio baseline/tandem |\n")
	t.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rb.rows {
		reqs := fmt.Sprint(r.m.requests.total())
		if r.m.reported >= 0 {
			reqs += fmt.Sprintf(" (self-count %d)", r.m.reported)
		}
		rss := fmtMiB(r.m.peakRSS)
		if r.side == sideHelm {
			rss += fmt.Sprintf(" (max of %d runs)", r.m.invocations)
		}
		ratio := "—"
		if base, ok := rb.baseline(r.scenario); ok && r.side != sideHelm {
			ratio = fmt.Sprintf("%.1f× faster, %.1f× fewer requests", base.wall.Seconds()/r.m.wall.Seconds(),
				float64(base.requests.total())/float64(max(1, r.m.requests.total())))
		}
		side := r.side
		if side == sideHelm {
			side = "helm CLI (baseline)"
		}
		cp := "—"
		if d, ok := r.m.elsewhere.controlPlanes(); ok {
			cp = fmt.Sprintf("%.1f s", d.Seconds())
		}
		fmt.Fprintf(&t, "| %s | %s | %.1f s | %s | %d | %s | %.1f s | %s | %s |\n", r.scenario, side, r.m.wall.Seconds(), reqs,
			r.m.revisions, rss, r.m.cpu.Seconds(), cp, ratio)
	}
	t.WriteString("\nWhere the CPU went meanwhile (client: the side's own processes; control planes: by component, both clusters summed; other jobs: the rest of the machine's busy time):\n\n")
	for _, r := range rb.rows {
		fmt.Fprintf(&t, "- %s, %s: client %.1f s; %s\n", r.scenario, r.side, r.m.cpu.Seconds(), r.m.elsewhere.String(r.m.cpu))
	}
	t.WriteString("\nWhere the requests went (time summed over overlapping requests, and response size):\n\n")
	for _, r := range rb.rows {
		fmt.Fprintf(&t, "- %s, %s: %s\n", r.scenario, r.side, r.m.traffic)
	}
	fmt.Fprint(os.Stdout, t.String())
}

// machine describes where the figures come from: CPUs, memory, and the load
// average when the table was printed (other jobs on the machine show there).
func machine() string {
	s := fmt.Sprintf("%d CPUs", runtime.NumCPU())
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int64
		if _, err := fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kib); err == nil {
			s += fmt.Sprintf(", %.0f GiB memory", float64(kib)/(1<<20))
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			s += ", load average " + strings.Join(f[:3], " ")
		}
	}
	return s + ", " + time.Now().UTC().Format("2006-01-02")
}
