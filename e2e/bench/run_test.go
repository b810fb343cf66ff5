package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// proc is one finished child process.
type proc struct {
	stdout, stderr string
	code           int
	maxRSS         int64 // KiB
	cpu            time.Duration
}

// run runs a binary and returns how it went; it fails only when the binary
// could not run at all.
func run(ctx context.Context, env []string, bin string, args ...string) (proc, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	p := proc{stdout: stdout.String(), stderr: stderr.String()}
	if ps := cmd.ProcessState; ps != nil {
		p.code = ps.ExitCode()
		p.maxRSS = maxRSS(ps)
		p.cpu = ps.UserTime() + ps.SystemTime()
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return p, fmt.Errorf("run %s %s: %w", filepath.Base(bin), strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		return p, fmt.Errorf("%s %s: %w\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), ctx.Err(), p.stderr)
	}
	return p, nil
}

// measurement is one side's cost of one run (or the mean over several).
type measurement struct {
	wall     time.Duration
	requests requestCounts // counted by the proxies, both clusters
	traffic  traffic       // time and response bytes by request kind, both clusters
	// reported is tandem's own count (the report's apiRequests summed over
	// clusters); -1 for helm.
	reported    int64
	revisions   int           // new Helm revisions, both clusters
	peakRSS     int64         // KiB: the tandem process; the largest of the helm processes
	cpu         time.Duration // the side's own processes: tandem, or every helm run
	elsewhere   cpuAccount    // what the control planes and the machine spent meanwhile
	invocations int           // processes run
}

func (m measurement) add(o measurement) measurement {
	m.wall += o.wall
	m.requests = m.requests.add(o.requests)
	m.traffic = m.traffic.add(o.traffic)
	m.reported += o.reported
	m.revisions += o.revisions
	m.peakRSS = max(m.peakRSS, o.peakRSS)
	m.cpu += o.cpu
	m.elsewhere = m.elsewhere.add(o.elsewhere)
	m.invocations += o.invocations
	return m
}

// mean divides the sums by n; peak RSS stays the peak.
func (m measurement) mean(n int) measurement {
	if n <= 1 {
		return m
	}
	m.wall /= time.Duration(n)
	for i := range m.requests {
		m.requests[i] /= int64(n)
		m.traffic.time[i] /= time.Duration(n)
		m.traffic.bytes[i] /= int64(n)
	}
	m.reported /= int64(n)
	m.revisions /= n
	m.cpu /= time.Duration(n)
	m.elsewhere = m.elsewhere.div(n)
	m.invocations /= n
	return m
}

// tandemReport is the part of `tandem reconcile -o json` the benchmarks read.
type tandemReport struct {
	Clusters []struct {
		Name        string `json:"name"`
		Error       string `json:"error"`
		APIRequests int64  `json:"apiRequests"`
		Counts      struct {
			Installed, Upgraded, Unchanged, Failed int
		} `json:"counts"`
	} `json:"clusters"`
}

func (h *harness) tandemEnv() []string {
	return []string{"TANDEM_CACHE_DIR=" + filepath.Join(h.cacheDir, "tandem"), "KUBECONFIG=" + h.kubeconfig}
}

// reconcile runs `tandem reconcile -o json` on the manifest in dir, through the proxies.
func (h *harness) reconcile(tb testing.TB, dir string, flags ...string) (measurement, tandemReport) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	args := append([]string{"reconcile", "--manifest-dir", dir, "--kubeconfig", h.kubeconfig, "-o", "json"}, flags...)
	if d := os.Getenv("TANDEM_BENCH_CPUPROFILE"); d != "" {
		h.profiles++
		args = append(args, "--cpuprofile", filepath.Join(d, fmt.Sprintf("reconcile-%02d.pprof", h.profiles)))
	}
	before, beforeT := h.requests(), h.traffic()
	start := time.Now()
	p, err := run(ctx, h.tandemEnv(), h.tandem, args...)
	wall := time.Since(start)
	if err != nil {
		tb.Fatal(err)
	}
	var rep tandemReport
	if jerr := json.Unmarshal([]byte(p.stdout), &rep); jerr != nil || p.code != 0 {
		tb.Fatalf("tandem %s: exit %d (%v)\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), p.code, jerr, p.stderr, p.stdout)
	}
	m := measurement{wall: wall, requests: h.requests().sub(before), traffic: h.traffic().sub(beforeT), peakRSS: p.maxRSS, cpu: p.cpu, invocations: 1}
	for _, c := range rep.Clusters {
		m.reported += c.APIRequests
	}
	return m, rep
}

func (h *harness) helmEnv() []string {
	home := filepath.Join(h.cacheDir, "helm")
	return []string{"HELM_CACHE_HOME=" + filepath.Join(home, "cache"), "HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"), "KUBECONFIG=" + h.kubeconfig}
}

// helmBaseline is the script a team would write without tandem: for each
// cluster, in parallel, `helm upgrade --install --wait` of every release, one
// after another, with the stock helm CLI and its default flags.
func (h *harness) helmBaseline(tb testing.TB, w *workload, namespace string) measurement {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	per := make([]measurement, len(clusterNames))
	errs := make([]error, len(clusterNames))
	before, beforeT := h.requests(), h.traffic()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clusterNames {
		wg.Go(func() {
			for _, rel := range w.releases {
				args := []string{"upgrade", "--install", rel, w.path("charts/svc"),
					"--namespace", namespace, "--create-namespace", "--wait", "--timeout", "5m",
					"-f", w.path(w.valuesFile(rel)), "--kubeconfig", h.kubeconfig, "--kube-context", c}
				p, err := run(ctx, h.helmEnv(), h.helm, args...)
				if err == nil && p.code != 0 {
					err = fmt.Errorf("helm %s: exit %d\n%s", strings.Join(args, " "), p.code, p.stderr)
				}
				if err != nil {
					errs[i] = fmt.Errorf("cluster %s: %w", c, err)
					return
				}
				per[i] = per[i].add(measurement{peakRSS: p.maxRSS, cpu: p.cpu, invocations: 1})
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	mustNoError(tb, errs...)
	m := measurement{wall: wall, requests: h.requests().sub(before), traffic: h.traffic().sub(beforeT), reported: -1}
	for _, p := range per {
		m = m.add(p)
	}
	return m
}
