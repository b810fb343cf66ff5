package render

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
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
// A Renderer starts workers as renders need them, up to Options.Concurrency,
// and reuses them for the renders of one Render or RenderAll call; it kills
// them all before that call returns, and replaces a worker it had to kill.
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
	Env []string
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
}

// workers returns the pool for one call, or nil without Isolation.
func (r *Renderer) workers() *workerPool {
	if r.opts.Isolation == nil {
		return nil
	}
	iso := *r.opts.Isolation
	return &workerPool{
		iso:     iso,
		env:     workerEnv(os.Environ(), iso.Env),
		timeout: r.opts.Timeout,
		started: r.workerStarted,
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
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	rest, err := (&renderJob{
		release: req.Release, namespace: req.Namespace, caps: req.Capabilities, upgrade: req.Upgrade,
		overlay: req.Overlay, values: vals, lookup: req.Lookup != nil,
	}).encodeRest()
	if err != nil {
		return rendered{}, err
	}
	cw, err := p.chartWire(ch)
	if err != nil {
		return rendered{}, err
	}
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
		a, err := w.converse(convCtx, cw, rest, req.Lookup)
		done <- result{a, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			w.discard()
			return rendered{}, w.failure(res.err)
		}
		p.put(w)
		if res.a.err != "" {
			return rendered{}, errors.New(res.a.err)
		}
		return res.a.rendered, nil
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

// start starts a worker.
func (p *workerPool) start() (*worker, error) {
	if len(p.iso.Command) == 0 {
		return nil, errors.New("start render worker: Isolation.Command is empty")
	}
	cmd := exec.Command(p.iso.Command[0], p.iso.Command[1:]...)
	cmd.Env = p.env
	cmd.SysProcAttr = workerSysProcAttr()
	cmd.WaitDelay = workerWaitDelay
	// Pipes of our own rather than cmd's: cmd.Wait closes its pipes when
	// the worker exits, and the reaper calls it while a conversation may
	// still be reading the last answer.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start render worker: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_ = inR.Close()
		_ = inW.Close()
		return nil, fmt.Errorf("start render worker: %w", err)
	}
	stderr := &tailBuffer{max: stderrTail}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, stderr
	err = cmd.Start()
	// The worker holds its ends now; ours would keep the pipes open after
	// it dies.
	_ = inR.Close()
	_ = outW.Close()
	if err != nil {
		_ = inW.Close()
		_ = outR.Close()
		return nil, fmt.Errorf("start render worker %s: %w", p.iso.Command[0], err)
	}
	w := &worker{
		cmd:    cmd,
		pid:    cmd.Process.Pid,
		stdin:  inW,
		stdout: outR,
		in:     bufio.NewWriter(inW),
		out:    bufio.NewReader(outR),
		stderr: stderr,
		exited: make(chan struct{}),
		charts: map[uint64]bool{},
	}
	go w.reap()
	if p.started != nil {
		p.started(w.pid)
	}
	return w, nil
}

// worker is one worker process. It is used by one render at a time, handed
// from one to the next through the pool.
type worker struct {
	cmd    *exec.Cmd
	pid    int
	stdin  *os.File
	stdout *os.File
	in     *bufio.Writer
	out    *bufio.Reader
	stderr *tailBuffer

	exited  chan struct{} // closed once the worker is reaped
	waitErr error         // cmd.Wait's, set before exited closes

	// mu orders kill against reap: the process group is signalled only
	// while its leader is not reaped, so that its id cannot have been
	// reused by another process group.
	mu     sync.Mutex
	reaped bool // guarded by mu

	greeted bool            // the hello was read
	charts  map[uint64]bool // chart ids this worker holds
}

// discard kills the worker and waits, within workerGrace, for it to be reaped.
func (w *worker) discard() {
	w.kill()
	w.release()
}

// release closes the parent's pipe ends, which also ends a conversation's
// read, and waits, within workerGrace, for the reaper.
func (w *worker) release() {
	_ = w.stdin.Close()
	_ = w.stdout.Close()
	select {
	case <-w.exited:
	case <-time.After(workerGrace):
	}
}

// failure describes a broken conversation with the worker, once it is
// discarded: what broke, and how the worker ended.
func (w *worker) failure(err error) error {
	end := "still running after " + workerGrace.String()
	select {
	case <-w.exited:
		end = "exit status 0"
		if w.waitErr != nil {
			end = w.waitErr.Error()
		}
	default:
	}
	msg := fmt.Sprintf("render worker (pid %d): %v (worker: %s", w.pid, err, end)
	if tail := w.stderr.String(); tail != "" {
		msg += fmt.Sprintf("; stderr: %q", tail)
	}
	return errors.New(msg + ")")
}

// converse has the worker render one request: it sends the request, then
// serves the worker's lookups from lookup until the answer comes. Its error
// means the worker cannot be trusted with another request; a render's own
// failure is in the answer.
func (w *worker) converse(ctx context.Context, cw *wire, rest []byte, lookup LookupProvider) (*answer, error) {
	if !w.greeted {
		typ, body, err := readFrame(w.out)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, os.ErrClosed):
			return nil, fmt.Errorf("read hello: %w", err)
		case err != nil:
			return nil, fmt.Errorf("not a tandem render worker: read hello: %w", err)
		case typ != msgHello || string(body) != workerProtocol:
			return nil, errors.New("not a tandem render worker: its first message is not the expected hello")
		}
		w.greeted = true
	}
	e := &encoder{}
	e.uvarint(cw.id)
	send := !w.charts[cw.id]
	if send {
		e.buf = append(e.buf, cw.enc...)
	} else {
		e.chart(nil)
	}
	e.buf = append(e.buf, rest...)
	if err := writeFrame(w.in, msgRender, e.buf); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	if send {
		w.charts[cw.id] = true
	}
	l := &lookupServer{provider: lookup}
	for {
		typ, body, err := readFrame(w.out)
		if err != nil {
			return nil, fmt.Errorf("read answer: %w", err)
		}
		switch typ {
		case msgAnswer:
			return decodeAnswer(body)
		case msgLookup:
			c, err := decodeLookupCall(body)
			if err != nil {
				return nil, err
			}
			rep, err := l.serve(ctx, c)
			if err != nil {
				return nil, err
			}
			b, err := rep.encode()
			if err != nil {
				// A result the codec cannot carry fails the lookup, not the worker.
				b, _ = (&lookupReply{err: asRemoteError(err)}).encode()
			}
			if err := writeFrame(w.in, msgLookupReply, b); err != nil {
				return nil, fmt.Errorf("send lookup reply: %w", err)
			}
		default:
			return nil, fmt.Errorf("unexpected message %q while rendering", typ)
		}
	}
}

// lookupServer makes a worker's lookup calls on the request's provider. Helm
// gets a client and uses it at once, so only the latest is kept.
type lookupServer struct {
	provider LookupProvider
	client   dynamic.NamespaceableResourceInterface
	id       uint64
}

// serve returns an error only for a call that breaks the conversation; the
// provider's own errors go back to the worker in the reply.
func (l *lookupServer) serve(ctx context.Context, c *lookupCall) (*lookupReply, error) {
	if l.provider == nil {
		return nil, errors.New("lookup call for a render without a lookup provider")
	}
	if c.op == opClient {
		client, namespaced, err := l.provider.GetClientFor(c.apiVersion, c.kind)
		if err != nil {
			return &lookupReply{err: asRemoteError(err)}, nil
		}
		l.id++
		l.client = client
		return &lookupReply{client: l.id, namespaced: namespaced}, nil
	}
	if l.client == nil || c.client != l.id {
		return nil, fmt.Errorf("lookup call on client %d, not the latest (%d)", c.client, l.id)
	}
	var ri dynamic.ResourceInterface = l.client
	if c.hasNamespace {
		ri = l.client.Namespace(c.namespace)
	}
	if c.op == opGet {
		obj, err := ri.Get(ctx, c.name, metav1.GetOptions{})
		if err != nil {
			return &lookupReply{err: asRemoteError(err)}, nil
		}
		if obj == nil {
			return &lookupReply{}, nil
		}
		return &lookupReply{found: true, object: obj.Object}, nil
	}
	list, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		return &lookupReply{err: asRemoteError(err)}, nil
	}
	if list == nil {
		return &lookupReply{}, nil
	}
	rep := &lookupReply{found: true, object: list.Object}
	if list.Items != nil {
		rep.items = make([]map[string]any, len(list.Items))
		for i := range list.Items {
			rep.items[i] = list.Items[i].Object
		}
	}
	return rep, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	mu  sync.Mutex
	buf []byte // guarded by mu
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
