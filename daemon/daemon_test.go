package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/reconciler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSource is a remote whose head the test moves; commits in bad fail to load.
type fakeSource struct {
	mu       sync.Mutex
	head     string
	bad      map[string]bool
	heads    int
	loads    []string
	volatile bool
}

func (s *fakeSource) Head(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heads++
	if s.head == "" {
		return "", errors.New("remote unreachable")
	}
	return s.head, nil
}

func (s *fakeSource) Load(_ context.Context, commit string) (*manifest.Manifest, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads = append(s.loads, commit)
	if s.bad[commit] {
		return nil, "", fmt.Errorf("tandem.yaml: releases[0].replicaz: unknown field")
	}
	return &manifest.Manifest{ID: "default", Clusters: []manifest.Cluster{{Name: "blue", Role: manifest.RoleActive}, {Name: "green", Role: manifest.RoleStandby}}}, commit, nil
}

func (s *fakeSource) Ref() string    { return "main" }
func (s *fakeSource) Volatile() bool { return s.volatile }

func (s *fakeSource) move(c string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.head = c
}

// fakePipeline records the commits it reconciles; while gate is non-nil each
// run waits for a value on it (or its ctx).
type fakePipeline struct {
	mu       sync.Mutex
	commits  []string
	gate     chan struct{}
	started  chan string
	fail     map[string]string // commit -> cluster error
	notApply map[string]bool
	ctxErr   error
	// uncommitted records each run's Options.Uncommitted.
	uncommitted []bool
}

func (p *fakePipeline) Reconcile(ctx context.Context, m *manifest.Manifest, opts reconciler.Options) (*reconciler.Report, error) {
	if p.started != nil {
		p.started <- opts.Commit
	}
	if p.gate != nil {
		select {
		case <-p.gate:
		case <-ctx.Done():
			p.mu.Lock()
			p.ctxErr = ctx.Err()
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.notApply[opts.Commit] {
		return nil, &reconciler.NotAppliedError{Err: errors.New(`cluster "blue": release "web": render: template: boom`)}
	}
	p.commits = append(p.commits, opts.Commit)
	p.uncommitted = append(p.uncommitted, opts.Uncommitted)
	rep := &reconciler.Report{Commit: opts.Commit}
	for _, c := range m.Clusters {
		cr := reconciler.ClusterReport{Name: c.Name, Role: string(c.Role), Commit: opts.Commit,
			Releases: []reconciler.ReleaseReport{{Name: "web", Namespace: "shop", Action: reconciler.ActionUnchanged, Outcome: reconciler.OutcomeOK,
				Drifted: []string{"Deployment shop/web"}}}}
		cr.Counts.Unchanged, cr.Counts.Drifted = 1, 1
		cr.Error = p.fail[opts.Commit]
		rep.Clusters = append(rep.Clusters, cr)
	}
	return rep, nil
}

func (p *fakePipeline) Status(_ context.Context, m *manifest.Manifest, _ reconciler.Selection) ([]reconciler.ClusterStatus, error) {
	var out []reconciler.ClusterStatus
	for _, c := range m.Clusters {
		out = append(out, reconciler.ClusterStatus{Name: c.Name, Role: string(c.Role), Releases: []reconciler.ReleaseStatus{
			{Name: "web", Namespace: "shop", Revision: 3, Status: "deployed", Chart: "web", ChartVersion: "1.2.0"}}})
	}
	return out, nil
}

func (p *fakePipeline) runs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.commits)
}

// start runs a daemon with a poll interval long enough that only hints and
// the first check drive it; the returned func stops it and waits.
func start(t *testing.T, src Source, pipe Pipeline, tweak func(*Options)) (*Daemon, func()) {
	t.Helper()
	opts := DefaultOptions()
	opts.Interval = time.Hour
	opts.Resync = time.Hour
	opts.Metrics = NewMetrics()
	if tweak != nil {
		tweak(&opts)
	}
	d := New(src, pipe, opts)
	ctx, cancel := context.WithCancel(context.Background())
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, stop) }()
	var once sync.Once
	halt := func() {
		once.Do(func() {
			close(stop)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after stop")
			}
			cancel()
		})
	}
	t.Cleanup(halt)
	return d, halt
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFirstCheckAppliesHeadAndIdlePollsDoNothing(t *testing.T) {
	src := &fakeSource{head: "c1"}
	pipe := &fakePipeline{}
	d, halt := start(t, src, pipe, nil)
	eventually(t, "first run", func() bool { return len(pipe.runs()) == 1 })
	for range 5 {
		d.Hint("poll")
		time.Sleep(20 * time.Millisecond)
	}
	eventually(t, "hints checked", func() bool { src.mu.Lock(); defer src.mu.Unlock(); return src.heads >= 2 })
	halt()
	if got := pipe.runs(); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("runs = %v, want one run at c1 (checks of an unmoved ref reconcile nothing)", got)
	}
	if got := len(src.loads); got != 1 {
		t.Errorf("loads = %d, want 1: an unmoved ref fetches nothing", got)
	}
	st := d.Status()
	if st.CommitSeen != "c1" || len(st.Clusters) != 2 || st.Clusters[0].CommitApplied != "c1" || st.Clusters[0].Drifted != 1 {
		t.Errorf("status = %+v", st)
	}
}

// TestBadCommitIsNeverApplied: a commit that fails to load, and one that
// fails to render, are reported and not applied; the next good one is.
func TestBadCommitIsNeverApplied(t *testing.T) {
	src := &fakeSource{head: "good1", bad: map[string]bool{"bad-load": true}}
	pipe := &fakePipeline{notApply: map[string]bool{"bad-render": true}}
	d, halt := start(t, src, pipe, nil)
	eventually(t, "first run", func() bool { return len(pipe.runs()) == 1 })

	src.move("bad-load")
	d.Hint("webhook/github")
	eventually(t, "bad-load rejected", func() bool { r := d.Status().Rejected; return r != nil && r.Commit == "bad-load" })
	if !strings.Contains(d.Status().Rejected.Error, "replicaz") {
		t.Errorf("rejection = %q, want the load error", d.Status().Rejected.Error)
	}
	d.Hint("poll") // the same bad head again: not retried
	src.move("bad-render")
	d.Hint("webhook/github")
	eventually(t, "bad-render rejected", func() bool { r := d.Status().Rejected; return r != nil && r.Commit == "bad-render" })

	src.move("good2")
	d.Hint("webhook/github")
	eventually(t, "good2 applied", func() bool { return len(pipe.runs()) == 2 })
	halt()
	if got := pipe.runs(); !slices.Equal(got, []string{"good1", "good2"}) {
		t.Errorf("applied %v, want good1 then good2 and no bad commit", got)
	}
	for _, c := range d.Status().Clusters {
		if c.CommitApplied != "good2" {
			t.Errorf("%s applied %s, want good2", c.Name, c.CommitApplied)
		}
	}
}

// TestBadHeadResyncsLastGood: while the head is bad, a resync reconciles
// the last good commit (drift is still corrected), never the bad one.
func TestBadHeadResyncsLastGood(t *testing.T) {
	src := &fakeSource{head: "good1", bad: map[string]bool{"bad": true}}
	pipe := &fakePipeline{}
	d, halt := start(t, src, pipe, func(o *Options) { o.Resync = 50 * time.Millisecond })
	eventually(t, "first run", func() bool { return len(pipe.runs()) == 1 })
	src.move("bad")
	time.Sleep(60 * time.Millisecond)
	d.Hint("poll")
	eventually(t, "resync of good1", func() bool { return len(pipe.runs()) >= 2 })
	halt()
	for _, c := range pipe.runs() {
		if c != "good1" {
			t.Errorf("reconciled %s; only good1 may be applied while the head is bad", c)
		}
	}
}

// TestBurstOfPushesCoalesces: with a run in flight, a burst of pushes
// leaves one pending run, at the newest commit.
func TestBurstOfPushesCoalesces(t *testing.T) {
	src := &fakeSource{head: "c0"}
	pipe := &fakePipeline{gate: make(chan struct{}), started: make(chan string, 16)}
	d, halt := start(t, src, pipe, nil)
	if c := <-pipe.started; c != "c0" {
		t.Fatalf("first run at %s", c)
	}
	for i := 1; i <= 20; i++ {
		src.move(fmt.Sprintf("c%d", i))
		d.Hint("webhook/github")
	}
	pipe.gate <- struct{}{} // finish c0
	if c := <-pipe.started; c != "c20" {
		t.Fatalf("second run at %s, want the newest commit c20", c)
	}
	pipe.gate <- struct{}{}
	d.Hint("poll")
	eventually(t, "check after the burst", func() bool { src.mu.Lock(); defer src.mu.Unlock(); return src.heads >= 3 })
	halt()
	if got := pipe.runs(); !slices.Equal(got, []string{"c0", "c20"}) {
		t.Errorf("runs = %v, want [c0 c20]", got)
	}
}

// TestStopLetsTheRunFinish: a graceful stop waits for the run in flight
// and starts no other; cancelling ctx cancels the run at once.
func TestStopLetsTheRunFinish(t *testing.T) {
	src := &fakeSource{head: "c1"}
	pipe := &fakePipeline{gate: make(chan struct{}), started: make(chan string, 4)}
	d := New(src, pipe, Options{Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, stop) }()
	<-pipe.started
	close(stop)
	select {
	case <-done:
		t.Fatal("Run returned with a run in flight")
	case <-time.After(100 * time.Millisecond):
	}
	eventually(t, "draining shown while the run finishes", func() bool { return d.Status().Draining })
	if d.Status().Running == nil {
		t.Error("status lost the run in flight")
	}
	pipe.gate <- struct{}{}
	if err := <-done; err != nil {
		t.Errorf("Run = %v after a graceful stop", err)
	}
	if got := pipe.runs(); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("runs = %v", got)
	}

	// Hard stop: ctx cancelled while a run waits.
	pipe2 := &fakePipeline{gate: make(chan struct{}), started: make(chan string, 4)}
	d2 := New(&fakeSource{head: "c1"}, pipe2, Options{Interval: time.Hour})
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- d2.Run(ctx2, make(chan struct{})) }()
	<-pipe2.started
	cancel2()
	if err := <-done2; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if pipe2.ctxErr == nil {
		t.Error("the run in flight was not cancelled")
	}
}

// TestFailedRunIsRetriedWithBackoff: a run with a failed cluster is tried
// again without a new commit, after RetryMin, then after twice as long.
func TestFailedRunIsRetriedWithBackoff(t *testing.T) {
	src := &fakeSource{head: "c1"}
	pipe := &fakePipeline{fail: map[string]string{"c1": "release web: timed out"}}
	d, halt := start(t, src, pipe, func(o *Options) { o.RetryMin = 30 * time.Millisecond; o.Interval = 10 * time.Millisecond; o.Jitter = 0 })
	eventually(t, "three runs", func() bool { return len(pipe.runs()) >= 3 })
	halt()
	if st := d.Status(); st.Clusters[0].LastError == "" || st.Clusters[0].CommitApplied != "" {
		t.Errorf("status = %+v, want the failure recorded and nothing applied", st.Clusters[0])
	}
}

func TestUnreachableRemoteIsReported(t *testing.T) {
	src := &fakeSource{}
	pipe := &fakePipeline{}
	d, halt := start(t, src, pipe, nil)
	eventually(t, "poll error", func() bool { return d.Status().LastPollError != "" })
	halt()
	if len(pipe.runs()) != 0 {
		t.Error("reconciled without a commit")
	}
}

// TestEndpointsAndMetrics scrapes a real /metrics and checks the series and
// labels alerting depends on.
func TestEndpointsAndMetrics(t *testing.T) {
	src := &fakeSource{head: "c1"}
	pipe := &fakePipeline{}
	d, halt := start(t, src, pipe, nil)
	eventually(t, "first run", func() bool { return len(d.Status().Clusters) == 2 })
	d.SetLeader("pod-a", true)
	d.opts.Metrics.Webhook("github", 401)
	srv := httptest.NewServer(d.Handler(nil))
	defer srv.Close()

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/status": 200, "/hooks/github": 404} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, res.StatusCode, want)
		}
	}
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	has := func(name string, labels map[string]string) bool {
		f, ok := fams[name]
		if !ok {
			return false
		}
		for _, m := range f.Metric {
			got := map[string]string{}
			for _, l := range m.Label {
				got[l.GetName()] = l.GetValue()
			}
			match := true
			for k, v := range labels {
				if got[k] != v {
					match = false
				}
			}
			if match {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"tandem_reconcile_duration_seconds", map[string]string{"cluster": "blue"}},
		{"tandem_reconcile_total", map[string]string{"cluster": "green", "result": "success"}},
		{"tandem_release_info", map[string]string{"cluster": "green", "namespace": "shop", "release": "web", "chart": "web", "version": "1.2.0", "revision": "3", "status": "deployed", "role": "standby"}},
		{"tandem_release_drifted_objects", map[string]string{"cluster": "blue", "namespace": "shop", "release": "web"}},
		{"tandem_cluster_info", map[string]string{"cluster": "green", "role": "standby"}},
		{"tandem_applied_commit_info", map[string]string{"cluster": "blue", "commit": "c1"}},
		{"tandem_git_poll_total", map[string]string{"result": "new"}},
		{"tandem_git_fetch_duration_seconds", nil},
		{"tandem_webhook_requests_total", map[string]string{"provider": "github", "code": "401"}},
		{"tandem_leader", nil},
	} {
		if !has(c.name, c.labels) {
			t.Errorf("scrape lacks %s%v", c.name, c.labels)
		}
	}
	halt()
	res2, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz after stop = %d, want 503", res2.StatusCode)
	}
}
