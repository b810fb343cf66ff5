package daemon

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// Source is the manifest repository the daemon follows.
type Source interface {
	// Head says which commit the followed ref names now: one request to
	// the remote (ls-remote), or a look at a local working tree.
	Head(ctx context.Context) (string, error)
	// Load makes the commit available (fetching only what the cache lacks)
	// and loads and validates its manifest. It returns the commit it
	// loaded, which may be newer than the one asked for when the cache
	// lacked it and the ref had moved on.
	Load(ctx context.Context, commit string) (*manifest.Manifest, string, error)
	// Ref names the followed branch or directory, for reports.
	Ref() string
	// Volatile says Head cannot see every change (a working tree edited
	// without a commit), so every cycle loads and reconciles again.
	Volatile() bool
}

// Pipeline runs one reconcile; *reconciler.Pipeline is one.
type Pipeline interface {
	Reconcile(ctx context.Context, m *manifest.Manifest, opts reconciler.Options) (*reconciler.Report, error)
	Status(ctx context.Context, m *manifest.Manifest, sel reconciler.Selection) ([]reconciler.ClusterStatus, error)
}

var _ Pipeline = (*reconciler.Pipeline)(nil)

// Options configure a Daemon.
type Options struct {
	// Interval is how often the remote is asked where the ref points,
	// with ±Jitter (a fraction) so that replicas and daemons spread out.
	Interval time.Duration
	Jitter   float64
	// Resync is how often the last good commit is reconciled again even
	// without a new one (drift is detected and, as configured, corrected).
	Resync time.Duration
	// RetryMin is the first wait before a failed run is tried again; it
	// doubles on each failure up to Resync. A new commit runs at once.
	RetryMin time.Duration
	// RunOptions returns the reconciler's options for one run (a fresh
	// RunID and lock holder each time); the daemon sets Commit and Ref.
	RunOptions func() reconciler.Options
	// Logger receives the daemon's logs; nil discards them.
	Logger *slog.Logger
	// Metrics, when set, are updated after every poll and run.
	Metrics *Metrics
}

// DefaultOptions returns `tandem serve`'s defaults.
func DefaultOptions() Options {
	return Options{
		Interval:   time.Minute,
		Jitter:     0.1,
		Resync:     10 * time.Minute,
		RetryMin:   10 * time.Second,
		RunOptions: reconciler.DefaultOptions,
	}
}

// Daemon follows a Source and reconciles each new commit. Create it with New.
type Daemon struct {
	src   Source
	pipe  Pipeline
	opts  Options
	log   *slog.Logger
	hints chan string // capacity 1: the one pending run

	mu sync.Mutex // guards st and the fields below
	st Status
	// appliedSHA is the last good commit, resynced while later ones are bad.
	appliedSHA  string
	lastRun     time.Time
	failures    int // consecutive runs with a failed cluster
	nextRetry   time.Time
	sawFirstRun bool
}

// New returns a Daemon; nothing runs until Run.
func New(src Source, pipe Pipeline, opts Options) *Daemon {
	d := DefaultOptions()
	if opts.Interval <= 0 {
		opts.Interval = d.Interval
	}
	if opts.Resync <= 0 {
		opts.Resync = d.Resync
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = d.RetryMin
	}
	if opts.RunOptions == nil {
		opts.RunOptions = d.RunOptions
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Daemon{src: src, pipe: pipe, opts: opts, log: opts.Logger, hints: make(chan string, 1),
		st: Status{Ref: src.Ref(), Clusters: []ClusterState{}}}
}

// Hint asks for a check of the remote now (a webhook said it moved). It never
// blocks: while a run is pending, further hints are folded into it.
func (d *Daemon) Hint(trigger string) {
	select {
	case d.hints <- trigger:
	default:
	}
}

// Run follows the source until stop is closed or ctx is done. Closing stop
// lets the run in flight finish and then returns (graceful shutdown); ctx
// being done cancels it at once (leadership lost, or the shutdown timeout
// passed): the reconciler then stops writing, marks what it had started
// and releases its cluster locks before Run returns.
func (d *Daemon) Run(ctx context.Context, stop <-chan struct{}) error {
	timer := time.NewTimer(0) // the first check at once
	defer timer.Stop()
	returned := make(chan struct{})
	defer close(returned)
	go func() { // draining shows at once, not when the run in flight ends
		select {
		case <-stop:
			d.Drain()
		case <-returned:
		}
	}()
	for {
		var trigger string
		select {
		case <-stop:
			d.Drain()
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			trigger = "poll"
		case trigger = <-d.hints:
		}
		// stop and a trigger can be ready together; stop wins.
		select {
		case <-stop:
			d.Drain()
			return nil
		default:
		}
		d.cycle(ctx, trigger)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(d.jittered())
	}
}

func (d *Daemon) jittered() time.Duration {
	j := d.opts.Jitter
	if j <= 0 {
		return d.opts.Interval
	}
	f := 1 + j*(2*rand.Float64()-1)
	return time.Duration(float64(d.opts.Interval) * f)
}

// cycle is one check of the remote and, when something is to be done, one run.
func (d *Daemon) cycle(ctx context.Context, trigger string) {
	head, err := d.src.Head(ctx)
	if err != nil {
		d.opts.Metrics.poll("error")
		d.log.Warn("git check failed", "ref", d.src.Ref(), "trigger", trigger, "err", err)
		d.update(func(s *Status) { s.LastPollError = err.Error(); s.LastPoll = time.Now() })
		return
	}
	now := time.Now()
	d.mu.Lock()
	seen := d.st.CommitSeen
	d.st.CommitSeen, d.st.LastPoll, d.st.LastPollError = head, now, ""
	moved := head != seen
	bad := d.st.Rejected != nil && d.st.Rejected.Commit == head
	resync := d.appliedSHA != "" && now.Sub(d.lastRun) >= d.opts.Resync
	retry := d.failures > 0 && !now.Before(d.nextRetry)
	first := !d.sawFirstRun
	d.mu.Unlock()

	switch {
	case moved || first || d.src.Volatile():
		d.opts.Metrics.poll("new")
		if moved && seen != "" {
			d.log.Info("new commit", "commit", short(head), "trigger", trigger)
		}
	case bad && !resync:
		d.opts.Metrics.poll("unchanged")
		return
	case resync || retry:
		d.opts.Metrics.poll("unchanged")
	default:
		d.opts.Metrics.poll("unchanged")
		return
	}

	m, commit := d.load(ctx, head, trigger)
	if m == nil {
		return
	}
	d.apply(ctx, m, commit, trigger)
}

// load loads head; when head is bad it loads the last good commit again if
// a resync is due (the clusters stay at the last good commit, and drift is
// still corrected), else returns nil.
func (d *Daemon) load(ctx context.Context, head, trigger string) (*manifest.Manifest, string) {
	d.mu.Lock()
	bad := d.st.Rejected != nil && d.st.Rejected.Commit == head && !d.src.Volatile()
	goodSHA := d.appliedSHA
	resync := goodSHA != "" && time.Since(d.lastRun) >= d.opts.Resync
	d.mu.Unlock()
	if !bad {
		start := time.Now()
		m, commit, err := d.src.Load(ctx, head)
		d.opts.Metrics.fetched(time.Since(start))
		if err == nil {
			return m, commit
		}
		if ctx.Err() != nil {
			return nil, ""
		}
		d.reject(head, trigger, err)
	}
	if !resync {
		return nil, ""
	}
	// Loaded again, not kept: its checkout may have been pruned since.
	m, commit, err := d.src.Load(ctx, goodSHA)
	if err != nil {
		d.log.Warn("resync of the last good commit failed to load", "commit", short(goodSHA), "err", err)
		return nil, ""
	}
	return m, commit
}

func (d *Daemon) reject(commit, trigger string, err error) {
	d.opts.Metrics.rejected()
	d.log.Warn("commit not applied", "commit", short(commit), "trigger", trigger, "err", err)
	d.update(func(s *Status) {
		s.Rejected = &Rejected{Commit: commit, Error: err.Error(), At: time.Now()}
	})
	d.mu.Lock()
	d.sawFirstRun = true
	d.mu.Unlock()
}

// apply runs the pipeline on m and records the outcome.
func (d *Daemon) apply(ctx context.Context, m *manifest.Manifest, commit, trigger string) {
	opts := d.opts.RunOptions()
	opts.Commit, opts.Ref = commit, d.src.Ref()
	log := d.log.With("commit", short(commit))
	opts.Logger = log
	if opts.Progress == nil {
		opts.Progress = logProgress(log)
	}
	start := time.Now()
	run := &Run{Commit: commit, Trigger: trigger, Started: start}
	d.update(func(s *Status) { r := *run; s.Running = &r })

	rep, err := d.pipe.Reconcile(ctx, m, opts)
	run.Duration = reconciler.Duration(time.Since(start))
	var na *reconciler.NotAppliedError
	switch {
	case errors.As(err, &na):
		// Rendered offline before any cluster was touched: the commit is bad.
		d.update(func(s *Status) { s.Running = nil })
		d.reject(commit, trigger, err)
		return
	case err != nil:
		run.Error = err.Error()
	}

	failed := rep != nil && len(rep.Failed()) > 0
	d.mu.Lock()
	d.lastRun = time.Now()
	d.sawFirstRun = true
	if err == nil && rep != nil {
		d.appliedSHA = commit
	}
	if failed || err != nil {
		d.failures++
		wait := d.opts.RetryMin << min(d.failures-1, 16)
		if wait > d.opts.Resync || wait <= 0 {
			wait = d.opts.Resync
		}
		d.nextRetry = time.Now().Add(wait)
	} else {
		d.failures = 0
	}
	d.mu.Unlock()

	var statuses []reconciler.ClusterStatus
	if rep != nil && ctx.Err() == nil {
		// What the clusters hold now, for release metrics: one list per cluster.
		statuses, _ = d.pipe.Status(ctx, m, reconciler.Selection{})
	}
	d.opts.Metrics.observe(m, rep, statuses)
	d.update(func(s *Status) {
		s.Running = nil
		s.LastRun = run
		if rep != nil {
			s.record(m, rep)
		}
	})
	if rep == nil {
		log.Error("run failed", "err", err)
		return
	}
	for _, c := range rep.Clusters {
		attrs := []any{"cluster", c.Name, "commit", short(commit), "installed", c.Counts.Installed, "upgraded", c.Counts.Upgraded,
			"unchanged", c.Counts.Unchanged, "pruned", c.Counts.Pruned, "drifted", c.Counts.Drifted,
			"duration", time.Duration(c.Duration).Round(time.Millisecond).String()}
		if c.Failed() {
			d.log.Error("reconcile failed", append(attrs, "err", c.Error)...)
		} else {
			d.log.Info("reconciled", attrs...)
		}
	}
}

// update changes the status under the lock.
func (d *Daemon) update(f func(*Status)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(&d.st)
}

// Status returns a copy of what the daemon knows now.
func (d *Daemon) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st.copy()
}

// Drain marks the daemon as shutting down: /readyz answers 503 from now on,
// also on a replica that does not lead, and while a run is still finishing.
func (d *Daemon) Drain() {
	d.update(func(s *Status) { s.Draining = true })
}

// SetLeader records who leads (for /status and the tandem_leader metric).
func (d *Daemon) SetLeader(holder string, self bool) {
	d.opts.Metrics.leader(self)
	d.update(func(s *Status) { s.Leader, s.IsLeader = holder, self })
}

func short(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// logProgress logs a run's release events: each release's end at info,
// failures and skips at warn, waits at debug.
func logProgress(log *slog.Logger) func(reconciler.Event) {
	return func(e reconciler.Event) {
		attrs := []any{"cluster", e.Cluster, "release", e.Release, "action", string(e.Action)}
		switch e.Phase {
		case "done":
			log.Info("release done", append(attrs, "revision", e.Revision, "duration", e.Duration.Round(time.Millisecond).String())...)
		case "failed", "skipped", "cluster":
			log.Warn("release "+e.Phase, append(attrs, "message", e.Message)...)
		case "switchover":
			log.Info("switchover", "cluster", e.Cluster, "message", e.Message)
		case "waiting":
			log.Debug("release waiting", append(attrs, "message", e.Message)...)
		}
	}
}
