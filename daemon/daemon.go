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

// liveReader reads what clusters serve, for the live metrics (DNS weights,
// switchovers under way, Standby workloads scaled up); a Pipeline without
// it (a test's fake) leaves those metrics out.
type liveReader interface {
	Live(ctx context.Context, m *manifest.Manifest, rows []reconciler.ClusterStatus) ([]reconciler.LiveStatus, error)
}

var _ liveReader = (*reconciler.Pipeline)(nil)

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
	// What this replica knew from an earlier term is stale: another
	// replica may have applied newer commits meanwhile. A term starts from
	// the remote's head, never from a commit remembered from before.
	d.mu.Lock()
	d.sawFirstRun, d.appliedSHA, d.failures, d.nextRetry = false, "", 0, time.Time{}
	d.st.Rejected, d.st.Draining = nil, false
	d.mu.Unlock()
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
		if ctx.Err() != nil {
			return
		}
		d.opts.Metrics.poll("error")
		d.log.Warn("git check failed", "ref", d.src.Ref(), "trigger", trigger, "err", err)
		d.update(func(s *Status) { s.LastPollError = err.Error(); s.LastPoll = time.Now() })
		// The remote being down stops neither retries nor resyncs of the
		// last good commit, which the cache holds.
		if d.due() {
			d.resync(ctx, trigger)
		}
		return
	}
	now := time.Now()
	d.mu.Lock()
	seen := d.st.CommitSeen
	d.st.CommitSeen, d.st.LastPoll, d.st.LastPollError = head, now, ""
	moved := head != seen
	rejected := d.st.Rejected != nil && d.st.Rejected.Commit == head
	retry := d.failures > 0 && !now.Before(d.nextRetry)
	resync := d.appliedSHA != "" && now.Sub(d.lastRun) >= d.opts.Resync
	first := !d.sawFirstRun
	d.mu.Unlock()

	switch {
	case moved || first || d.src.Volatile():
		d.opts.Metrics.poll("new")
		if moved && seen != "" {
			d.log.Info("new commit", "commit", short(head), "trigger", trigger)
		}
		d.attempt(ctx, head, trigger)
	case rejected && retry:
		// A commit that failed to load or render is tried again with
		// backoff: the failure may have been passing (a fetch timeout, a
		// chart repository down, a loaded node), and a truly bad commit
		// costs one offline render per backoff period, no cluster write.
		d.opts.Metrics.poll("unchanged")
		d.attempt(ctx, head, trigger)
	case rejected && resync:
		d.opts.Metrics.poll("unchanged")
		d.resync(ctx, trigger)
	case rejected:
		d.opts.Metrics.poll("unchanged")
	case resync || retry:
		d.opts.Metrics.poll("unchanged")
		d.attempt(ctx, head, trigger)
	default:
		d.opts.Metrics.poll("unchanged")
	}
}

// due says a retry or a resync is due.
func (d *Daemon) due() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	return d.appliedSHA != "" && (d.failures > 0 && !now.Before(d.nextRetry) || now.Sub(d.lastRun) >= d.opts.Resync)
}

// attempt loads commit and applies it; a commit that does not load is
// rejected (and retried with backoff), and while it is, a due resync of the
// last good commit still runs.
func (d *Daemon) attempt(ctx context.Context, commit, trigger string) {
	start := time.Now()
	m, got, err := d.src.Load(ctx, commit)
	d.opts.Metrics.fetched(time.Since(start))
	if err != nil {
		if ctx.Err() != nil {
			return // stopped, not a verdict on the commit
		}
		if got == "" {
			got = commit
		}
		d.reject(got, trigger, err)
		d.mu.Lock()
		resync := d.appliedSHA != "" && time.Since(d.lastRun) >= d.opts.Resync
		d.mu.Unlock()
		if resync {
			d.resync(ctx, trigger)
		}
		return
	}
	d.apply(ctx, m, got, trigger)
}

// resync reconciles the last good commit of this term again, unless a
// cluster's state record says another commit was applied since (the other
// replica led meanwhile, or someone ran tandem reconcile): going back to
// this term's commit would roll them back.
func (d *Daemon) resync(ctx context.Context, trigger string) {
	d.mu.Lock()
	good := d.appliedSHA
	d.mu.Unlock()
	if good == "" {
		return
	}
	m, got, err := d.src.Load(ctx, good)
	if err != nil || got != good {
		if ctx.Err() == nil {
			d.log.Warn("resync skipped: the last good commit could not be loaded as it was", "commit", short(good), "got", short(got), "err", err)
		}
		return
	}
	statuses, _ := d.pipe.Status(ctx, m, reconciler.Selection{})
	for _, cs := range statuses {
		if cs.State != nil && cs.State.Commit != "" && cs.State.Commit != good {
			d.log.Warn("resync skipped: a cluster holds another commit than this daemon last applied (another replica or a person applied it)",
				"cluster", cs.Name, "commit", short(good), "clusterCommit", short(cs.State.Commit))
			d.mu.Lock()
			d.lastRun = time.Now() // try again at the next resync, not every poll
			d.mu.Unlock()
			return
		}
	}
	d.apply(ctx, m, good, trigger+"/resync")
}

// reject records that commit was not applied, and when to try it again.
func (d *Daemon) reject(commit, trigger string, err error) {
	d.opts.Metrics.rejected()
	d.log.Warn("commit not applied", "commit", short(commit), "trigger", trigger, "err", err)
	d.mu.Lock()
	d.sawFirstRun = true
	d.backoff()
	d.st.Rejected = &Rejected{Commit: commit, Error: err.Error(), At: time.Now()}
	d.mu.Unlock()
}

// backoff counts a failure and schedules the next try; d.mu is held.
func (d *Daemon) backoff() {
	d.failures++
	wait := d.opts.RetryMin << min(d.failures-1, 16)
	if wait > d.opts.Resync || wait <= 0 {
		wait = d.opts.Resync
	}
	d.nextRetry = time.Now().Add(wait)
}

// apply runs the pipeline on m and records the outcome.
func (d *Daemon) apply(ctx context.Context, m *manifest.Manifest, commit, trigger string) {
	opts := d.opts.RunOptions()
	opts.Commit, opts.Ref = commit, d.src.Ref()
	// A working tree is re-read every cycle and may hold what no commit does.
	opts.Uncommitted = d.src.Volatile()
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
	case errors.As(err, &na) && ctx.Err() == nil:
		// Rendered offline before any cluster was touched: not applied.
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
		if d.st.Rejected != nil && d.st.Rejected.Commit != commit && d.st.Rejected.Commit != d.st.CommitSeen {
			d.st.Rejected = nil // a newer commit superseded it
		}
	}
	if failed || err != nil {
		d.backoff()
	} else {
		d.failures = 0
		if d.st.Rejected != nil && d.st.Rejected.Commit == commit {
			d.st.Rejected = nil
		}
	}
	d.mu.Unlock()

	var statuses []reconciler.ClusterStatus
	if rep != nil && ctx.Err() == nil {
		// What the clusters hold now, for release metrics: one list per cluster.
		statuses, _ = d.pipe.Status(ctx, m, reconciler.Selection{})
	}
	d.opts.Metrics.observe(m, rep, statuses)
	if lr, ok := d.pipe.(liveReader); ok && len(statuses) > 0 && d.opts.Metrics != nil {
		live, _ := lr.Live(ctx, m, statuses)
		d.opts.Metrics.observeLive(live)
	}
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
