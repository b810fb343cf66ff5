package clusters

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ErrFenced marks a write refused because this process does not hold the
// cluster's writer lock any more: it was lost or released. Test with
// errors.Is; the error is a *FencedError.
var ErrFenced = errors.New("write fenced")

// FencedError is the error of a mutating request to a Cluster whose Lock
// was lost or released. It is returned by the Cluster's HTTP transport, so
// it reaches callers wrapped by client-go and Helm.
type FencedError struct {
	Cluster string
	// Reason says how the lock ended, e.g. "lock lost: not renewed within
	// the renew deadline" or "lock released".
	Reason string
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("cluster %q: write refused: %s", e.Cluster, e.Reason)
}

// Is makes errors.Is(err, ErrFenced) true.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// The fence is what makes the Lease exclude writers rather than usually
// exclude them. Cancelling a context is not enough: Helm's upgrade keeps
// applying objects and writing its release record from goroutines after
// its context ends, and Helm's storage writes deliberately ignore
// cancellation. So every mutating request of a Cluster passes one
// transport that knows whether the Cluster's current Lock is valid:
//
//   - never locked (diff, dry runs, status): requests pass untouched;
//   - locked and valid: a mutating request gets a deadline no later than
//     the lock's validity (start of the last successful renewal plus
//     RenewDeadline), so a write stalled in the network is cancelled by
//     the client before anyone else could hold the Lease;
//   - lost or released: a mutating request is refused with a *FencedError
//     before it leaves the process.
//
// What remains: a request already on the wire when the lock ends. It was
// sent before the validity ended and its client cancels it at that
// instant, but the API server may still commit one whose bytes reached it.
// That is safe because another process takes the Lease over only after it
// has itself watched the Lease record stay unchanged for a full lease
// duration, starting no earlier than our last successful renewal was
// written, i.e. no earlier than that renewal's start. Takeover therefore
// happens at least Duration after the renewal start, while our writes are
// sent and cancelled by RenewDeadline after it: the gap
// Duration-RenewDeadline (10 s with the defaults) is the margin for a
// request in flight and for the two machines' clocks running at slightly
// different rates. The assumption is the one every lease makes: the
// network delivers what it delivers within that margin. Bytes the kernel
// already sent (or retransmits after a partition heals) cannot be
// recalled by any client; only a server-side precondition could refuse
// them. If this process dies, nothing is left to write. Unlock closes the
// fence and waits for writes in flight before it releases the Lease,
// because a released Lease may be taken at once.
//
// Reads, dry-run requests (they persist nothing) and the Lock's own Lease
// requests (marked with leaseRequest) pass the fence.

// leaseRequestKey marks a request context as the Lock's own Lease traffic.
type leaseRequestKey struct{}

func leaseRequest(ctx context.Context) context.Context {
	return context.WithValue(ctx, leaseRequestKey{}, true)
}

// fence holds the term of the Cluster's current Lock; nil until the
// Cluster is first locked. A new Lock replaces it (re-arms the fence).
type fence struct {
	cluster string
	cur     atomic.Pointer[term]
}

func (f *fence) arm(t *term) { f.cur.Store(t) }

// fencingTransport applies a Cluster's fence to every request.
type fencingTransport struct {
	next  http.RoundTripper
	fence *fence
}

func (t *fencingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tm := t.fence.cur.Load()
	if tm == nil || !mutating(req) || req.Context().Value(leaseRequestKey{}) != nil {
		return t.next.RoundTrip(req)
	}
	deadline, done, err := tm.admit(time.Now())
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close() // RoundTrip owns the body, even when refusing
		}
		return nil, &FencedError{Cluster: t.fence.cluster, Reason: err.Error()}
	}
	ctx, cancel := context.WithDeadline(req.Context(), deadline)
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	// Once response headers are in, the server has decided the write: it
	// no longer counts as in flight for Unlock.
	done()
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// WrappedRoundTripper lets client-go see through the wrapper.
func (t *fencingTransport) WrappedRoundTripper() http.RoundTripper { return t.next }

// mutating reports whether a request can change the cluster. Dry runs
// cannot: the API server persists nothing for dryRun=All.
func mutating(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return req.URL.Query().Get("dryRun") != "All"
}

// cancelOnClose releases a request's deadline once its body is consumed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// term is one Lock's hold on a cluster, as the fence sees it: until when
// it is valid, whether it has ended, and the writes in flight under it.
// Times are local monotonic readings: validity never depends on a remote
// clock.
type term struct {
	renewDeadline time.Duration

	mu         sync.Mutex
	validUntil time.Time
	ended      error // nil while held
	inflight   int
	idle       chan struct{} // closed when inflight drops to 0
}

// newTerm starts a term from a successful claim whose request was sent at
// start.
func newTerm(start time.Time, renewDeadline time.Duration) *term {
	return &term{renewDeadline: renewDeadline, validUntil: start.Add(renewDeadline)}
}

// renewed extends validity after a successful renewal whose request was
// sent at start: the renewal is only known to have landed after start, so
// that is what validity counts from. An ended term still tracks validity
// (Unlock releases the Lease only while valid) but admits no writes.
func (t *term) renewed(start time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if until := start.Add(t.renewDeadline); until.After(t.validUntil) {
		t.validUntil = until
	}
}

// deadline returns the end of validity.
func (t *term) deadline() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.validUntil
}

// expired reports whether the validity has passed at now, whether or not
// the term was ended for writes.
func (t *term) expired(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !now.Before(t.validUntil)
}

// end closes the term for writes, with reason, unless it already ended.
// It reports whether this call ended it.
func (t *term) end(reason error) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended != nil {
		return false
	}
	t.ended = reason
	return true
}

// admit lets one write through at now: it returns the write's deadline
// and a func to call when the write is no longer in flight, or why it is
// refused.
func (t *term) admit(now time.Time) (deadline time.Time, done func(), err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended != nil {
		return time.Time{}, nil, t.ended
	}
	if !now.Before(t.validUntil) {
		return time.Time{}, nil, errors.New("lock lost: not renewed within the renew deadline")
	}
	if t.inflight == 0 {
		t.idle = make(chan struct{})
	}
	t.inflight++
	var once sync.Once
	return t.validUntil, func() { once.Do(t.release) }, nil
}

func (t *term) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.inflight--
	if t.inflight == 0 {
		close(t.idle)
	}
}

// drain waits until no admitted write is in flight, or ctx ends. Every
// admitted write has a deadline, so this is bounded by the validity even
// for a write stalled in the network.
func (t *term) drain(ctx context.Context) error {
	t.mu.Lock()
	idle := t.idle
	n := t.inflight
	t.mu.Unlock()
	if n == 0 {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d writes still in flight: %w", n, ctx.Err())
	}
}
