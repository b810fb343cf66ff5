package render

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/chart"
)

// Isolation runs Helm's template engine in worker processes rather than in
// the renderer's own. Helm's engine cannot be interrupted: in process, a
// render past Options.Timeout (a runaway range, a recursive tpl) is only
// abandoned, and keeps a CPU busy for as long as the process lives. A
// worker past the deadline, or whose ctx is done, is killed with its whole
// process group and reaped.
//
// Only the engine's step runs in the worker (what `helm template` does
// between loading a chart and printing it: dependency processing, the
// engine, sorting, the overlay); the parent loads the chart, merges the
// values, parses and digests, so a Result is the in-process one byte for
// byte. The parent sends the loaded chart (never a path: the worker reads
// no file) and the merged values; the templates' lookups are sent back and
// made on the Request's LookupProvider in the parent, so the worker holds no
// client and no credentials. Without a LookupProvider the worker finds
// nothing itself, as an in-process render does.
//
// A Renderer starts workers as renders need them, up to MaxWorkers at a
// time, and reuses them for the renders of one Render or RenderAll call; it
// kills them all before that call returns, and replaces a worker it had to
// kill.
//
// A worker is also bounded in memory (MemoryLimit) and in the size of its
// answer (MaxOutput), so that a template that doubles a string in a range
// fails its own render rather than having the kernel's OOM killer take the
// whole container, daemon included. Worst case, one call's workers hold
// MaxWorkers × MemoryLimit, and the parent MaxWorkers × MaxOutput of their
// answers.
type Isolation struct {
	// Command is the worker's argv: a program whose only job is ServeWorker
	// on its stdin and stdout, e.g. {"/proc/self/exe", "render-worker"}
	// (tandem's hidden command).
	Command []string
	// Env is added to the worker's environment, as "KEY=value". The worker
	// inherits nothing else of the parent's environment but PATH, TMPDIR,
	// TZ (so that templates' dates are the parent's) and the Go runtime's
	// GOMAXPROCS, GOGC, GOMEMLIMIT and GODEBUG: no git token, cloud
	// credential, KUBECONFIG or HOME reaches it. Helm's engine reads no
	// environment variable (Helm removes sprig's env and expandenv).
	// A GOMEMLIMIT here overrides the one MemoryLimit sets.
	Env []string
	// MemoryLimit bounds the memory each worker may take beyond what it
	// holds once started (a few MiB), in bytes: 0 means
	// DefaultWorkerMemoryLimit, a negative value no limit. On Linux it
	// bounds the worker's RLIMIT_DATA (its heap and other private writable
	// mappings, not the address space Go reserves without using), set with
	// prlimit(2) once the worker says hello, before it is sent a request;
	// a render past it fails with "render used more than N MiB". On every
	// system the worker also gets GOMEMLIMIT an eighth below it, so that
	// its garbage collector works hard before the limit is reached.
	MemoryLimit int64
	// MaxOutput bounds a worker's answer (the rendered manifest and hooks)
	// and each of its lookup calls, in bytes: 0 means
	// DefaultWorkerMaxOutput. A larger one fails the render.
	MaxOutput int64
	// MaxWorkers bounds the workers of one Render or RenderAll call: 0
	// means min(Options.Concurrency, DefaultMaxWorkers). Renders beyond it
	// wait for a worker (the wait is not counted in Options.Timeout); the
	// rest of their work (chart loading, parsing) still runs up to
	// Options.Concurrency at a time.
	MaxWorkers int
}

const (
	// DefaultWorkerMemoryLimit is Isolation.MemoryLimit's default: a
	// render of a large chart (hundreds of objects) needs tens of MiB.
	DefaultWorkerMemoryLimit int64 = 1 << 30
	// DefaultWorkerMaxOutput is Isolation.MaxOutput's default, well above
	// a large chart's manifest (a few MiB) and below what Kubernetes could
	// store of it anyway.
	DefaultWorkerMaxOutput int64 = 64 << 20
	// DefaultMaxWorkers caps Isolation.MaxWorkers' default.
	DefaultMaxWorkers = 4
)

// withDefaults returns iso with its zero limits set, for a Renderer of the
// given concurrency.
func (iso Isolation) withDefaults(concurrency int) Isolation {
	if iso.MemoryLimit == 0 {
		iso.MemoryLimit = DefaultWorkerMemoryLimit
	}
	if iso.MaxOutput <= 0 {
		iso.MaxOutput = DefaultWorkerMaxOutput
	}
	if iso.MaxOutput > maxFrame {
		iso.MaxOutput = maxFrame
	}
	if iso.MaxWorkers <= 0 {
		iso.MaxWorkers = min(max(concurrency, 1), DefaultMaxWorkers)
	}
	return iso
}

// memoryLimitEnv is the worker's GOMEMLIMIT for a MemoryLimit: an eighth
// below it, so that the collector runs hard before an allocation fails.
func memoryLimitEnv(limit int64) []string {
	if limit <= 0 {
		return nil
	}
	return []string{fmt.Sprintf("GOMEMLIMIT=%d", limit-limit/8)}
}

// mib formats a limit of n bytes for errors: in MiB, or KiB, when whole.
func mib(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// inheritedByWorker says whether the parent's environment variable key
// reaches a worker (see Isolation.Env).
func inheritedByWorker(key string) bool {
	switch key {
	case "PATH", "TMPDIR", "TZ", "GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG":
		return true
	}
	return false
}

func workerEnv(parent, extra []string) []string {
	env := []string{}
	for _, kv := range parent {
		if k, _, ok := strings.Cut(kv, "="); ok && inheritedByWorker(k) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

const (
	// workerWaitDelay bounds how long reaping a dead worker waits for its
	// stderr to close.
	workerWaitDelay = time.Second
	// workerGrace bounds the wait for a killed worker to be reaped, and for
	// the conversation with it to end (a lookup under way in the parent is
	// cancelled; a provider that ignores its ctx is left behind after this).
	workerGrace = 10 * time.Second
	// stderrTail is how much of a worker's stderr a failure reports.
	stderrTail = 2048
)

// workerPool holds the workers of one Render or RenderAll call.
type workerPool struct {
	iso     Isolation
	env     []string
	timeout time.Duration
	started func(pid int) // test hook: called with each worker's pid
	// slots holds a token per render that has, or is getting, a worker:
	// at most iso.MaxWorkers. A worker is started only when none is idle,
	// so there are never more workers than tokens.
	slots chan struct{}
	// cache holds earlier answers (nil: none; see renderCache).
	cache *renderCache

	mu     sync.Mutex
	idle   []*worker              // guarded by mu
	charts map[*chart.Chart]*wire // guarded by mu
	nextID uint64                 // guarded by mu
	closed bool                   // guarded by mu
}

// wire is a chart as the workers get it, encoded once per pool.
type wire struct {
	id   uint64
	once sync.Once
	enc  []byte
	err  error
	// sum is enc's sha256 and cacheable whether renders of the chart may
	// be cached (see renderCache): made with enc.
	sum       [32]byte
	cacheable bool
}

// workers returns the pool for one call, or nil without Isolation.
func (r *Renderer) workers() *workerPool {
	if r.opts.Isolation == nil {
		return nil
	}
	s := r.workerSetup()
	return &workerPool{
		iso:     s.iso,
		env:     s.env,
		timeout: r.opts.Timeout,
		slots:   make(chan struct{}, s.iso.MaxWorkers),
		started: r.workerStarted,
		cache:   s.cache,
		charts:  map[*chart.Chart]*wire{},
	}
}

// close kills every idle worker; the pool's calls have all returned.
func (p *workerPool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, w := range idle {
		w.kill()
	}
	for _, w := range idle {
		w.release()
	}
	if p.cache != nil {
		p.cache.prune()
	}
}

func (p *workerPool) get() (*worker, error) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return p.start()
		}
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		select {
		case <-w.exited: // died while idle: replace it
			w.discard()
		default:
			return w, nil
		}
	}
}

func (p *workerPool) put(w *worker) {
	p.mu.Lock()
	if !p.closed {
		p.idle = append(p.idle, w)
		w = nil
	}
	p.mu.Unlock()
	if w != nil {
		w.discard()
	}
}

// chartWire returns ch's id and encoding, made once per pool.
func (p *workerPool) chartWire(ch *chart.Chart) (*wire, error) {
	p.mu.Lock()
	cw, ok := p.charts[ch]
	if !ok {
		p.nextID++
		cw = &wire{id: p.nextID}
		p.charts[ch] = cw
	}
	p.mu.Unlock()
	cw.once.Do(func() {
		e := &encoder{}
		e.chart(ch)
		cw.enc, cw.err = e.buf, e.err
		if p.cache != nil && cw.err == nil {
			cw.sum, cw.cacheable = sha256.Sum256(cw.enc), cacheable(cw.enc)
		}
	})
	if cw.err != nil {
		return nil, fmt.Errorf("chart %s: %w", ch.Name(), cw.err)
	}
	return cw, nil
}

// template runs Renderer.template in a worker, within the pool's timeout.
// It returns the error texts an in-process render does: the template's
// own, the deadline's, or ctx.Err().
func (p *workerPool) template(ctx context.Context, req Request, ch *chart.Chart, vals map[string]any) (rendered, error) {
	if err := ctx.Err(); err != nil {
		return rendered{}, err // start no worker for a call already cancelled
	}
	job := &renderJob{
		release: req.Release, namespace: req.Namespace, caps: req.Capabilities, upgrade: req.Upgrade,
		overlay: req.Overlay, values: vals, lookup: req.Lookup != nil,
	}
	rest, err := job.encodeRest()
	if err != nil {
		return rendered{}, err
	}
	cw, err := p.chartWire(ch)
	if err != nil {
		return rendered{}, err
	}
	var key [32]byte
	store := p.cache != nil && cw.cacheable && cacheable(rest)
	if store {
		key = p.cache.key(cw.sum, rest)
		if rd, ok := p.cache.get(key); ok {
			if rd.parsed == nil { // kept unparsed (an upgrade's render): keep it parsed
				rd.keep = &cacheSlot{c: p.cache, key: key}
			}
			return rd, nil
		}
	}
	// A release's first install against a cluster is followed by runs
	// that render it as an upgrade: the worker renders that too, so the
	// first no-op after an install finds it cached.
	alsoUpgrade := store && !req.Upgrade && req.Capabilities.Discovered
	var upgradeWithin time.Duration
	if alsoUpgrade {
		upgradeWithin = p.timeout
	}
	select {
	case p.slots <- struct{}{}:
		defer func() { <-p.slots }()
	case <-ctx.Done():
		return rendered{}, ctx.Err()
	}
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	w, err := p.get()
	if err != nil {
		return rendered{}, err
	}

	convCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		a   *answer
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := w.converse(convCtx, cw, rest, upgradeWithin, req.Lookup)
		done <- result{a, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			w.discard()
			return rendered{}, p.failure(w, res.err)
		}
		if res.a.retire {
			w.discard() // an upgrade's render still runs in it
		} else {
			p.put(w)
		}
		if res.a.err != "" {
			return rendered{}, errors.New(res.a.err)
		}
		rd := res.a.rendered
		if store {
			slot := &cacheSlot{c: p.cache, key: key}
			rd.keep = slot // once parsed
			if u := res.a.upgrade; u != nil && alsoUpgrade {
				job.upgrade = true
				if up, err := job.encodeRest(); err == nil {
					upKey := p.cache.key(cw.sum, up)
					if u.manifest == rd.manifest && u.hooks == rd.hooks {
						// The same bytes (most charts render the same
						// as an upgrade): stored with the install's
						// objects once they are parsed, not parsed twice.
						slot.also = &upKey
					} else {
						// Parsed now, while the install waits on the
						// cluster anyway, so the first no-op parses nothing.
						objs, err1 := ParseObjects(u.manifest, req.Namespace)
						hooks, err2 := ParseObjects(u.hooks, req.Namespace)
						if err1 == nil && err2 == nil {
							(&cacheSlot{c: p.cache, key: upKey}).store(*u, objs, hooks)
						}
					}
				}
			}
		}
		return rd, nil
	case <-timer.C:
		err = fmt.Errorf("render did not finish within %s (a runaway template loop?)", p.timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	cancel()
	w.discard()
	select {
	case <-done:
	case <-time.After(workerGrace):
	}
	return rendered{}, err
}

// failure describes a broken conversation with a discarded worker: a
// worker that ran out of memory, or whose answer was too large, fails the
// render with that alone; anything else is the worker's failure.
func (p *workerPool) failure(w *worker, err error) error {
	var big *frameTooLarge
	if errors.As(err, &big) && big.typ == msgAnswer {
		return fmt.Errorf("render output of %d bytes is more than the %s limit (Isolation.MaxOutput)", big.n, mib(big.limit))
	}
	if p.iso.MemoryLimit > 0 && w.outOfMemory() {
		return fmt.Errorf("render used more than %s (Isolation.MemoryLimit); its worker was stopped", mib(p.iso.MemoryLimit))
	}
	return w.failure(err)
}
