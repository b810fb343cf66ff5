//go:build linux

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/tandem-gitops/tandem/internal/syncbuf"

	"github.com/tandem-gitops/tandem/daemon"
	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/e2e/gitserver"
	"github.com/tandem-gitops/tandem/webhook"
)

// Sizes of BenchmarkServe's scenarios.
const (
	servePushes       = 20 // pushes measured per trigger
	servePollInterval = 5 * time.Second
	serveIdleWindow   = 15 * time.Second
	serveCycles       = 200 // resync cycles of the memory scenario
)

// serveRSSMarks are the resync cycles at which the daemon's memory is read.
var serveRSSMarks = []int{10, 50, 100, 150, serveCycles}

// exampleNamespaces are the namespaces examples/manifest installs into.
var exampleNamespaces = []string{"platform", "shop", "example"}

// BenchmarkServe measures `tandem serve` following a git branch on a real
// git server (loopback) with the examples manifest on both clusters, every
// API request counted by the proxies:
//
//	push-to-applied/webhook   a commit changing one release's values is pushed
//	                          and a signed GitHub webhook sent; time until
//	                          /status shows it applied on every cluster, over
//	                          20 pushes (p50, p95); --interval 1h, so only the
//	                          webhook can have started the run
//	push-to-applied/poll-5s   the same with polling only, --interval 5s; each
//	                          push lands at a random moment of the interval
//	idle-poll                 --interval 1s and nothing new: git requests per
//	                          poll and cluster writes (0 expected)
//	resync-cycles             --resync 500ms: RSS and Go heap at cycles 10 ...
//	                          200, and API requests and wall time per cycle
//	                          beside one `tandem reconcile` no-op run of the
//	                          same commit (the daemon should add nothing)
//
// Nothing is asserted on timing; a table of everything is printed at the end.
func BenchmarkServe(b *testing.B) {
	h := newHarness(b)
	h.deleteNamespaces(b, exampleNamespaces...)
	b.Cleanup(func() { h.deleteNamespaces(b, exampleNamespaces...) })
	s := &serveBench{h: h, git: gitserver.Start(b, "", ""), repo: e2etest.CopyExample(b), replicas: 3}
	// An ID of its own: the other benchmarks reconcile the examples with the
	// default one, and the state records must not mix.
	s.repo.Replace(b, "tandem.yaml", "\nclusters:\n", "\nid: bench-serve\nclusters:\n")
	s.git.CreateRepo(b, "examples")
	s.url = s.git.URL("examples")
	s.push(b, "examples manifest")
	s.secret = filepath.Join(b.TempDir(), "webhook-secret")
	if err := os.WriteFile(s.secret, []byte(serveWebhookSecret), 0o600); err != nil {
		b.Fatal(err)
	}

	b.Run("push-to-applied/webhook", func(b *testing.B) { s.pushToApplied(b, true) })
	b.Run("push-to-applied/poll-5s", func(b *testing.B) { s.pushToApplied(b, false) })
	b.Run("idle-poll", s.idlePoll)
	b.Run("resync-cycles", s.resyncCycles)
	// Printed, as the package's other tables are: a parent benchmark's
	// b.Log does not show without -v.
	fmt.Fprint(os.Stdout, s.table())
}

const serveWebhookSecret = "bench-webhook-secret"

// serveBench is BenchmarkServe's state: the manifest repository on the git
// server and the figures measured so far.
type serveBench struct {
	h        *harness
	git      *gitserver.Server
	repo     *e2etest.ManifestRepo // the working copy pushes are made from
	url      string
	head     string
	secret   string // path of the webhook secret file
	replicas int    // example's replicaCount at head

	latency     map[string][]time.Duration // by trigger
	idle        *idleFigures
	cycles      []cycleMark
	cycleCost   *measurement // per resync cycle, between the first and last mark
	oneShotCost *measurement // one `tandem reconcile` no-op run
}

// push commits the working copy as the new tip of main.
func (s *serveBench) push(b *testing.B, message string) string {
	b.Helper()
	s.head = s.git.PushDir(b, "examples", "main", s.repo.Dir, message)
	return s.head
}

// pushChange pushes a values change of one release (example's replicas,
// between 3 and 4) that reaches both clusters: replicas on blue, the
// recorded active count on green.
func (s *serveBench) pushChange(b *testing.B) string {
	b.Helper()
	next := 7 - s.replicas
	s.repo.Replace(b, "values/example.yaml", "replicaCount: "+strconv.Itoa(s.replicas), "replicaCount: "+strconv.Itoa(next))
	s.replicas = next
	return s.push(b, "example: "+strconv.Itoa(next)+" replicas")
}

func (s *serveBench) pushToApplied(b *testing.B, useWebhook bool) {
	trigger := "poll-" + servePollInterval.String()
	args := []string{"--repo", s.url, "--resync", "1h"}
	if useWebhook {
		trigger = "webhook"
		args = append(args, "--interval", "1h", "--webhook-secret-file", s.secret, "--webhook-rate", "100", "--webhook-burst", "100")
	} else {
		args = append(args, "--interval", servePollInterval.String())
	}
	d := s.h.startServe(b, args...)
	d.waitApplied(b, s.head, 5*time.Minute) // converge first; not measured
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	var lat []time.Duration
	for range servePushes {
		if !useWebhook {
			// The poll timer restarts when a run ends: push at a random
			// moment of the interval, not right after the last run.
			time.Sleep(time.Duration(rng.Int64N(int64(servePollInterval))))
		}
		sha := s.pushChange(b)
		start := time.Now()
		if useWebhook {
			d.githubPush(b, sha)
		}
		d.waitApplied(b, sha, 5*time.Minute)
		lat = append(lat, time.Since(start))
	}
	d.stop(b)
	if s.latency == nil {
		s.latency = map[string][]time.Duration{}
	}
	s.latency[trigger] = lat
	p50, p95 := percentile(lat, 50), percentile(lat, 95)
	b.ReportMetric(p50.Seconds(), "p50-s")
	b.ReportMetric(p95.Seconds(), "p95-s")
	b.ReportMetric(slices.Max(lat).Seconds(), "max-s")
}

// idleFigures are what an idle daemon does per poll.
type idleFigures struct {
	polls       float64
	gitRequests int
	cluster     requestCounts
}

func (s *serveBench) idlePoll(b *testing.B) {
	d := s.h.startServe(b, "--repo", s.url, "--interval", "1s", "--resync", "1h")
	d.waitApplied(b, s.head, 5*time.Minute)
	time.Sleep(2 * time.Second) // the run's tail: the release metrics' read of each cluster
	git0, req0, polls0 := s.git.Requests(), s.h.requests(), d.metric(b, "tandem_git_poll_total", nil)
	time.Sleep(serveIdleWindow)
	git1, req1, polls1 := s.git.Requests(), s.h.requests(), d.metric(b, "tandem_git_poll_total", nil)
	if runs := d.metric(b, "tandem_reconcile_total", nil); runs != 2 { // one run, two clusters
		b.Logf("idle-poll: %v reconciles counted; want the first run only", runs)
	}
	d.stop(b)
	f := &idleFigures{polls: polls1 - polls0, gitRequests: git1 - git0, cluster: req1.sub(req0)}
	s.idle = f
	b.ReportMetric(f.polls, "polls")
	b.ReportMetric(float64(f.gitRequests)/max(f.polls, 1), "git-req/poll")
	b.ReportMetric(float64(f.cluster[kindWrite]), "cluster-writes")
	b.ReportMetric(float64(f.cluster.total())/max(f.polls, 1), "api-req/poll")
}

// cycleMark is the daemon at one resync cycle.
type cycleMark struct {
	cycle    int
	at       time.Duration // since the daemon started
	rssKiB   int64
	heapByte float64 // go_memstats_heap_inuse_bytes
	requests requestCounts
}

func (s *serveBench) resyncCycles(b *testing.B) {
	start := time.Now()
	d := s.h.startServe(b, "--repo", s.url, "--interval", "500ms", "--resync", "500ms")
	d.waitApplied(b, s.head, 5*time.Minute)
	var marks []cycleMark
	deadline := time.Now().Add(30 * time.Minute)
	for _, mark := range serveRSSMarks {
		for {
			n := int(d.metric(b, "tandem_reconcile_total", map[string]string{"cluster": "blue"}))
			if n >= mark {
				marks = append(marks, cycleMark{cycle: n, at: time.Since(start), rssKiB: d.rssKiB(b),
					heapByte: d.metric(b, "go_memstats_heap_inuse_bytes", nil), requests: s.h.requests()})
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("resync-cycles: %d cycles after 30 minutes, want %d", n, mark)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if failed := d.metric(b, "tandem_reconcile_total", map[string]string{"result": "failure"}); failed > 0 {
		b.Logf("resync-cycles: %v cluster runs failed", failed)
	}
	d.stop(b)
	s.cycles = marks
	first, last := marks[0], marks[len(marks)-1]
	n := int64(last.cycle - first.cycle)
	per := measurement{wall: (last.at - first.at) / time.Duration(n), requests: last.requests.sub(first.requests)}
	for i := range per.requests {
		per.requests[i] /= n
	}
	s.cycleCost = &per

	// The same commit, one-shot, for comparison: what one run costs without a daemon.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	before := s.h.requests()
	t0 := time.Now()
	p, err := run(ctx, s.h.tandemEnv(), s.h.tandem, "reconcile", "--repo", s.url, "--ref", "main", "--kubeconfig", s.h.kubeconfig, "-o", "json")
	if err != nil || p.code != 0 {
		b.Fatalf("tandem reconcile --repo: %v exit %d\n%s", err, p.code, p.stderr)
	}
	s.oneShotCost = &measurement{wall: time.Since(t0), requests: s.h.requests().sub(before), peakRSS: p.maxRSS}

	b.ReportMetric(float64(first.rssKiB)/1024, "rss-MiB-cycle-"+strconv.Itoa(first.cycle))
	b.ReportMetric(float64(last.rssKiB)/1024, "rss-MiB-cycle-"+strconv.Itoa(last.cycle))
	b.ReportMetric(float64(last.rssKiB)/float64(first.rssKiB), "rss-growth-x")
	b.ReportMetric(float64(per.requests.total()), "api-req/cycle")
	b.ReportMetric(float64(s.oneShotCost.requests.total()), "api-req/one-shot")
	b.ReportMetric(float64(per.requests[kindWrite]), "writes/cycle")
}

// percentile is the nearest-rank p-th percentile of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}

func (s *serveBench) table() string {
	var t strings.Builder
	fmt.Fprintf(&t, "\n`tandem serve` on the examples manifest (blue active, green standby), git server on loopback; %s\n\n", machine())
	t.WriteString("| push → applied on every cluster | pushes | p50 | p95 | max |\n|---|---:|---:|---:|---:|\n")
	for _, trig := range []string{"webhook", "poll-" + servePollInterval.String()} {
		lat, ok := s.latency[trig]
		if !ok {
			continue
		}
		fmt.Fprintf(&t, "| %s | %d | %.2f s | %.2f s | %.2f s |\n", trig, len(lat), percentile(lat, 50).Seconds(), percentile(lat, 95).Seconds(), slices.Max(lat).Seconds())
	}
	if f := s.idle; f != nil {
		fmt.Fprintf(&t, "\nIdle, --interval 1s, %s: %.0f polls, %d git requests (%.2f per poll), cluster API requests %d (%.2f per poll), of them writes %d\n",
			serveIdleWindow, f.polls, f.gitRequests, float64(f.gitRequests)/max(f.polls, 1), f.cluster.total(), float64(f.cluster.total())/max(f.polls, 1), f.cluster[kindWrite])
	}
	if len(s.cycles) > 0 {
		t.WriteString("\n| resync cycle | since start | daemon RSS | Go heap in use |\n|---:|---:|---:|---:|\n")
		for _, m := range s.cycles {
			fmt.Fprintf(&t, "| %d | %.0f s | %s | %.1f MiB |\n", m.cycle, m.at.Seconds(), fmtMiB(m.rssKiB), m.heapByte/(1<<20))
		}
	}
	if c, o := s.cycleCost, s.oneShotCost; c != nil && o != nil {
		fmt.Fprintf(&t, "\nOne resync cycle (mean of cycles %d-%d): %.2f s, %d API requests (writes %d; %s)\n",
			s.cycles[0].cycle, s.cycles[len(s.cycles)-1].cycle, c.wall.Seconds(), c.requests.total(), c.requests[kindWrite], kindsOf(c.requests))
		fmt.Fprintf(&t, "One `tandem reconcile --repo` no-op run of the same commit: %.2f s, %d API requests (writes %d; %s), peak RSS %s\n",
			o.wall.Seconds(), o.requests.total(), o.requests[kindWrite], kindsOf(o.requests), fmtMiB(o.peakRSS))
	}
	return t.String()
}

func kindsOf(c requestCounts) string {
	var parts []string
	for i, n := range c {
		if n != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", kindNames[i], n))
		}
	}
	return strings.Join(parts, ", ")
}

// serveDaemon is one `tandem serve` process, its API requests through the
// proxies, listening on a loopback port of the kernel's choosing.
type serveDaemon struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
	err  error
	addr string
	http *http.Client
}

// startServe starts `tandem serve` with args, JSON logs and a loopback
// port, and waits until it serves HTTP. Cleanup kills its process group.
func (h *harness) startServe(b *testing.B, args ...string) *serveDaemon {
	b.Helper()
	d := &serveDaemon{out: &syncbuf.Buffer{}, done: make(chan struct{}), http: &http.Client{Timeout: 10 * time.Second}}
	args = append([]string{"serve", "--kubeconfig", h.kubeconfig, "--listen", "127.0.0.1:0", "--log-format", "json"}, args...)
	d.cmd = exec.Command(h.tandem, args...)
	d.cmd.Env = append(os.Environ(), h.tandemEnv()...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	b.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
		if b.Failed() {
			b.Logf("tandem %s\n%s", strings.Join(args, " "), d.out.String())
		}
	})
	deadline := time.Now().Add(time.Minute)
	for d.addr == "" {
		for _, line := range strings.Split(d.out.String(), "\n") {
			var r struct{ Msg, Listen string }
			if json.Unmarshal([]byte(line), &r) == nil && r.Msg == "serving" {
				d.addr = r.Listen
			}
		}
		if d.exited() || time.Now().After(deadline) {
			b.Fatalf("tandem serve did not start serving (exited %v: %v)\n%s", d.exited(), d.err, d.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

func (d *serveDaemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for the exit (the run in flight, if any,
// finishes first).
func (d *serveDaemon) stop(b *testing.B) {
	b.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("tandem serve did not exit within 2 minutes of SIGTERM")
	}
}

func (d *serveDaemon) get(path string, accept string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+d.addr+path, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return body, err
}

// waitApplied polls /status every 20ms until every cluster shows commit applied.
func (d *serveDaemon) waitApplied(b *testing.B, commit string, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		body, err := d.get("/status", "")
		if err == nil {
			var st daemon.Status
			if err = json.Unmarshal(body, &st); err == nil {
				done := len(st.Clusters) == len(clusterNames)
				for _, c := range st.Clusters {
					done = done && c.CommitApplied == commit
				}
				if done {
					return
				}
				last = string(body)
			}
		}
		if err != nil {
			last = err.Error()
		}
		if d.exited() || time.Now().After(deadline) {
			b.Fatalf("commit %s not applied on every cluster within %s (exited %v); last /status:\n%s", commit, timeout, d.exited(), last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// githubPush sends a signed GitHub push event for main at sha.
func (d *serveDaemon) githubPush(b *testing.B, sha string) {
	b.Helper()
	body := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","after":%q}`, sha))
	req, err := http.NewRequest(http.MethodPost, "http://"+d.addr+"/hooks/github", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", webhook.Sign([]byte(serveWebhookSecret), body))
	resp, err := d.http.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Fatalf("push webhook: %d, want %d", resp.StatusCode, http.StatusAccepted)
	}
}

// metric scrapes /metrics and sums the samples of a counter or gauge whose
// labels include match.
func (d *serveDaemon) metric(b *testing.B, name string, match map[string]string) float64 {
	b.Helper()
	body, err := d.get("/metrics", "text/plain;version=0.0.4")
	if err != nil {
		b.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		b.Fatalf("parse /metrics: %v", err)
	}
	var sum float64
	for _, m := range mfs[name].GetMetric() {
		ok := true
		for _, l := range m.GetLabel() {
			if want, set := match[l.GetName()]; set && want != l.GetValue() {
				ok = false
			}
		}
		if ok {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return sum
}

// rssKiB is the daemon process's resident set size (VmRSS), render workers
// not included.
func (d *serveDaemon) rssKiB(b *testing.B) int64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", rest, err)
			}
			return n
		}
	}
	b.Fatal(errors.New("no VmRSS in /proc/<pid>/status"))
	return 0
}
