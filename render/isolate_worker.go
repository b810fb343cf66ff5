package render

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

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
	stderr := &tailBuffer{max: stderrTail, marks: outOfMemoryMarks}
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
		cmd:         cmd,
		pid:         cmd.Process.Pid,
		stdin:       inW,
		stdout:      outR,
		in:          bufio.NewWriter(inW),
		out:         bufio.NewReader(outR),
		stderr:      stderr,
		exited:      make(chan struct{}),
		charts:      map[uint64]bool{},
		maxOutput:   p.iso.MaxOutput,
		memoryLimit: p.iso.MemoryLimit,
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
	// maxOutput bounds every message read from the worker.
	maxOutput int64
	// memoryLimit is set on the worker once it said hello (see limitMemory).
	memoryLimit int64
}

// outOfMemoryMarks are what the Go runtime writes to stderr as it dies
// for want of memory ("fatal error: runtime: out of memory", "runtime:
// out of memory: cannot allocate ...", "fatal error: runtime: cannot
// allocate memory"), and the race detector's runtime likewise; and what it
// writes when the limit stops it mapping a new thread's stack or an arena
// ("failed to create new OS thread (have 9 already; errno=12)", "cannot map
// pages in arena address space"): errno 12 is ENOMEM.
var outOfMemoryMarks = []string{"out of memory", "cannot allocate memory", "failed to allocate", "errno=12)", "cannot map pages"}

// outOfMemory says the worker, now reaped, died for want of memory (it hit
// its MemoryLimit). Call it only after the worker exited.
func (w *worker) outOfMemory() bool {
	select {
	case <-w.exited:
	default:
		return false
	}
	return w.stderr.marked()
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
// failure is in the answer. A positive upgradeWithin asks for the request
// rendered as an upgrade too (renderJob.alsoUpgrade), in an answer that
// comes within that time and fits the worker's output limit.
func (w *worker) converse(ctx context.Context, cw *wire, rest []byte, upgradeWithin time.Duration, lookup LookupProvider) (*answer, error) {
	if !w.greeted {
		typ, body, err := readFrameLimit(w.out, w.maxOutput)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, os.ErrClosed):
			return nil, fmt.Errorf("read hello: %w", err)
		case err != nil:
			return nil, fmt.Errorf("not a tandem render worker: read hello: %w", err)
		case typ != msgHello || string(body) != workerProtocol:
			return nil, errors.New("not a tandem render worker: its first message is not the expected hello")
		}
		w.greeted = true
		// Before the worker is sent anything: no template runs unbounded.
		if err := w.limitMemory(w.memoryLimit); err != nil {
			return nil, fmt.Errorf("memory limit: %w", err)
		}
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
	e.bool(upgradeWithin > 0)
	if upgradeWithin > 0 {
		e.uvarint(uint64(w.maxOutput))
		e.varint(int64(upgradeWithin))
	}
	if err := writeFrame(w.in, msgRender, e.buf); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	if send {
		w.charts[cw.id] = true
	}
	l := &lookupServer{provider: lookup}
	for {
		typ, body, err := readFrameLimit(w.out, w.maxOutput)
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

// tailBuffer keeps the last max bytes written to it, and whether any of
// marks was ever written (the text that says why a worker died comes
// first, before a long goroutine dump).
type tailBuffer struct {
	max   int
	marks []string // each shorter than max
	mu    sync.Mutex
	buf   []byte // guarded by mu
	seen  bool   // guarded by mu
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	from := len(t.buf)
	t.buf = append(t.buf, p...)
	for _, m := range t.marks {
		// A mark may straddle two writes: look from its length before p.
		if !t.seen && bytes.Contains(t.buf[max(0, from-len(m)+1):], []byte(m)) {
			t.seen = true
		}
	}
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) marked() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seen
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
