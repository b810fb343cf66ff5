package daemon

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// flakySource fails Load of a commit the first n times with a network error.
type flakySource struct {
	fakeSource
	fmu   sync.Mutex
	flaky map[string]int
}

func (s *flakySource) Load(ctx context.Context, commit string) (*manifest.Manifest, string, error) {
	s.fmu.Lock()
	if s.flaky[commit] > 0 {
		s.flaky[commit]--
		s.fmu.Unlock()
		return nil, "", errors.New("git https://example/x ref \"main\": fetch: read tcp: i/o timeout")
	}
	s.fmu.Unlock()
	return s.fakeSource.Load(ctx, commit)
}

// A transient fetch failure of a good commit is retried with backoff
// (found in review: it used to reject the commit for good).
func TestTransientLoadErrorIsRetried(t *testing.T) {
	src := &flakySource{fakeSource: fakeSource{head: "c1"}, flaky: map[string]int{"c2": 1}}
	pipe := &fakePipeline{}
	d, halt := start(t, src, pipe, func(o *Options) { o.Resync = 30 * time.Millisecond })
	eventually(t, "first run", func() bool { return len(pipe.runs()) == 1 })
	src.move("c2")
	d.Hint("webhook/github")
	eventually(t, "c2 tried", func() bool { r := d.Status().Rejected; return r != nil })
	for range 10 { // the remote is fine again; polls and resyncs go by
		time.Sleep(40 * time.Millisecond)
		d.Hint("poll")
	}
	time.Sleep(50 * time.Millisecond)
	halt()
	t.Logf("runs=%v rejected=%+v", pipe.runs(), d.Status().Rejected)
	if !slices.Contains(pipe.runs(), "c2") {
		t.Errorf("good commit c2 never applied after one transient fetch error; runs = %v", pipe.runs())
	}
}

// cancelPipe returns the NotAppliedError the real Pipeline returns when ctx is
// cancelled during the offline render (leadership lost), or a render timeout.
type transientRenderPipe struct {
	fakePipeline
	mu2   sync.Mutex
	fails map[string]int
}

func (p *transientRenderPipe) Reconcile(ctx context.Context, m *manifest.Manifest, opts reconciler.Options) (*reconciler.Report, error) {
	p.mu2.Lock()
	if p.fails[opts.Commit] > 0 {
		p.fails[opts.Commit]--
		p.mu2.Unlock()
		return nil, &reconciler.NotAppliedError{Err: errors.New(`cluster "blue": release "web": render did not finish within 30s (a runaway template loop?)`)}
	}
	p.mu2.Unlock()
	return p.fakePipeline.Reconcile(ctx, m, opts)
}

// A render that fails for a passing reason (timeout on a loaded host, chart
// repository 503) is retried (found in review: it rejected the commit for good).
func TestTransientRenderErrorIsRetried(t *testing.T) {
	src := &fakeSource{head: "c1"}
	pipe := &transientRenderPipe{fails: map[string]int{"c2": 1}}
	d, halt := start(t, src, pipe, func(o *Options) { o.Resync = 30 * time.Millisecond })
	eventually(t, "first run", func() bool { return len(pipe.runs()) == 1 })
	src.move("c2")
	d.Hint("webhook/github")
	eventually(t, "c2 rejected", func() bool { r := d.Status().Rejected; return r != nil })
	for range 10 {
		time.Sleep(40 * time.Millisecond)
		d.Hint("poll")
	}
	halt()
	t.Logf("runs=%v", pipe.runs())
	if !slices.Contains(pipe.runs(), "c2") {
		t.Errorf("good commit c2 never applied after one transient render failure; runs = %v", pipe.runs())
	}
}

// A replica that led before, regains leadership while the head is bad,
// resyncs ITS last good commit — older than what the other leader applied.
func TestNewTermNeverResyncsAnEarlierTermsCommit(t *testing.T) {
	src := &fakeSource{head: "x", bad: map[string]bool{"z": true}}
	pipe := &fakePipeline{}
	opts := DefaultOptions()
	opts.Interval, opts.Resync = time.Hour, 20*time.Millisecond
	d := New(src, pipe, opts)
	stop := make(chan struct{})
	// term 1
	ctx1, cancel1 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx1, stop) }()
	eventually(t, "x applied", func() bool { return len(pipe.runs()) == 1 })
	cancel1()
	<-done
	// meanwhile the other replica leads and applies y; then z (bad) is pushed.
	src.move("y")
	src.move("z")
	time.Sleep(30 * time.Millisecond)
	// term 2
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { done <- d.Run(ctx2, stop) }()
	eventually(t, "second term checked z", func() bool { r := d.Status().Rejected; return r != nil && r.Commit == "z" })
	time.Sleep(50 * time.Millisecond) // resyncs would be due by now
	cancel2()
	<-done
	t.Logf("runs=%v", pipe.runs())
	if slices.Contains(pipe.runs()[1:], "x") {
		t.Errorf("regained leadership with bad head z: reconciled x, older than y which the other leader applied (rollback)")
	}
}

// While the git remote is unreachable, a failed cluster is still retried and
// the cached last good commit resynced (found in review: nothing ran).
func TestGitDownStillRetriesAndResyncs(t *testing.T) {
	src := &fakeSource{head: "c1"}
	pipe := &fakePipeline{fail: map[string]string{"c1": "cluster green unreachable"}}
	d, halt := start(t, src, pipe, func(o *Options) { o.Resync = 20 * time.Millisecond; o.RetryMin = 5 * time.Millisecond })
	eventually(t, "first run", func() bool { return len(pipe.runs()) == 1 })
	src.move("") // remote unreachable
	for range 10 {
		time.Sleep(25 * time.Millisecond)
		d.Hint("poll")
	}
	halt()
	t.Logf("runs=%v", pipe.runs())
	if len(pipe.runs()) == 1 {
		t.Errorf("git down: no retry of the failed cluster and no resync of the cached last good commit for 250ms (10 resync periods)")
	}
}

// renderBlockPipe blocks the offline render of commit `block` until ctx ends
// and then fails as reconciler.Pipeline does: NotAppliedError{ctx.Err()}.
type renderBlockPipe struct {
	fakePipeline
	block   string
	entered chan struct{}
}

func (p *renderBlockPipe) Reconcile(ctx context.Context, m *manifest.Manifest, opts reconciler.Options) (*reconciler.Report, error) {
	if opts.Commit == p.block {
		p.block = ""
		close(p.entered)
		<-ctx.Done()
		return nil, &reconciler.NotAppliedError{Err: ctx.Err()}
	}
	return p.fakePipeline.Reconcile(ctx, m, opts)
}

// Leadership lost during the render of good commit y marks y rejected
// ("context canceled"). The other replica applies y. When this replica leads
// again with head still y, it resyncs x: a rollback with no bad commit at all.
func TestLeadershipLostMidRenderIsNoVerdict(t *testing.T) {
	src := &fakeSource{head: "x"}
	pipe := &renderBlockPipe{block: "y", entered: make(chan struct{})}
	opts := DefaultOptions()
	opts.Interval, opts.Resync = time.Hour, 20*time.Millisecond
	d := New(src, pipe, opts)
	stop := make(chan struct{})
	ctx1, cancel1 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx1, stop) }()
	eventually(t, "x applied", func() bool { return len(pipe.runs()) == 1 })
	src.move("y")
	d.Hint("webhook/github")
	<-pipe.entered
	cancel1() // lease lost mid-render
	<-done
	t.Logf("rejected after losing the lease: %+v", d.Status().Rejected)
	time.Sleep(30 * time.Millisecond) // the other replica leads and applies y
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { done <- d.Run(ctx2, stop) }()
	time.Sleep(100 * time.Millisecond)
	cancel2()
	<-done
	t.Logf("runs=%v", pipe.runs())
	if slices.Contains(pipe.runs()[1:], "x") {
		t.Errorf("second term reconciled x while the head (and the clusters) are at good commit y: rollback")
	}
}

// statePipe reports every cluster's state record at commit.
type statePipe struct {
	fakePipeline
	commit string
}

func (p *statePipe) Status(ctx context.Context, m *manifest.Manifest, sel reconciler.Selection) ([]reconciler.ClusterStatus, error) {
	out, err := p.fakePipeline.Status(ctx, m, sel)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range out {
		out[i].State = &clusters.State{Cluster: out[i].Name, Commit: p.commit}
	}
	return out, err
}

// TestResyncNeverRollsBackAnotherWriter: a person (or the other replica)
// applied y after this daemon applied x; the head is now a bad commit. A
// resync of x would roll the clusters back to x: it is skipped.
func TestResyncNeverRollsBackAnotherWriter(t *testing.T) {
	src := &fakeSource{head: "x", bad: map[string]bool{"z": true}}
	pipe := &statePipe{commit: "x"}
	d, halt := start(t, src, pipe, func(o *Options) { o.Resync = 20 * time.Millisecond })
	eventually(t, "x applied", func() bool { return len(pipe.runs()) == 1 })
	pipe.mu.Lock()
	pipe.commit = "y" // tandem reconcile by hand
	pipe.mu.Unlock()
	src.move("z")
	d.Hint("webhook/github")
	eventually(t, "z rejected", func() bool { r := d.Status().Rejected; return r != nil && r.Commit == "z" })
	for range 6 {
		time.Sleep(25 * time.Millisecond)
		d.Hint("poll")
	}
	halt()
	if got := pipe.runs(); len(got) != 1 {
		t.Errorf("runs = %v: resynced x over y, which another writer applied", got)
	}
}
