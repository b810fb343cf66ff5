package clusters

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SystemNamespace holds tandem's own objects on every cluster: the writer
// Lease and the state ConfigMap. It is created when first needed.
const SystemNamespace = "tandem-system"

// LeaseName is the coordination.k8s.io/v1 Lease that serializes tandem
// writers on a cluster.
const LeaseName = "tandem"

// lockRetry is how often a waiting Lock looks at the Lease again.
const lockRetry = time.Second

// ErrLockLost is returned by Unlock when the lock had already been lost.
var ErrLockLost = errors.New("lock lost")

// The lock follows client-go's leaderelection (lease duration, renew
// deadline, retry period; another holder's lease judged expired by when
// this process saw its record change, never by its timestamps), but is
// written here because leaderelection has no way to stop the leader's own
// writes when leadership ends: it calls OnStoppedLeading and trusts the
// program to stop, while Helm keeps writing after its context ends. Its
// callback-driven Run also fits a long-running controller, not a run that
// waits a bounded time for a lock, fails naming the holder and releases.
// The Lock here arms the Cluster's fence (fence.go) instead.

// LockOptions configures Lock.
type LockOptions struct {
	// Holder says who locks, e.g. "ci@runner-7:4121", for people reading
	// the Lease. Lock makes it unique: the Lease records
	// Holder/<cluster>/<random token> (see (*Lock).Holder), so two Locks
	// never take each other's Lease for their own, even from one process
	// on two Cluster values for the same API server.
	Holder string
	// Wait is how long Lock waits for a Lease someone else holds; 0 fails
	// at once. A holder that died is taken over only after its Lease has
	// been seen unchanged for its lease duration, so a Wait shorter than
	// that never takes over a dead holder's Lease.
	Wait time.Duration
	// Duration is the lease duration others wait, having seen the Lease
	// stop changing, before taking it over.
	Duration time.Duration
	// RenewDeadline is how long after the start of the last successful
	// renewal the lock stays valid; past it the lock is lost and the
	// Cluster refuses writes. It must be shorter than Duration: the
	// difference is the safety margin for writes in flight. 0 means 2/3 of
	// Duration.
	RenewDeadline time.Duration
	// RetryPeriod is how often the Lease is renewed, and renewal retried
	// after a failure. 0 means Duration/6.
	RetryPeriod time.Duration
}

// DefaultLockOptions returns user@host:pid as holder, no waiting, a 30 s
// lease renewed every 5 s, valid for 20 s after each renewal's start.
func DefaultLockOptions() LockOptions {
	who := "tandem"
	if u, err := user.Current(); err == nil && u.Username != "" {
		who = u.Username
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return LockOptions{
		Holder:        fmt.Sprintf("%s@%s:%d", who, host, os.Getpid()),
		Duration:      30 * time.Second,
		RenewDeadline: 20 * time.Second,
		RetryPeriod:   5 * time.Second,
	}
}

// withDefaults fills RenewDeadline and RetryPeriod and checks the timing
// is one that can exclude writers.
func (o LockOptions) withDefaults() (LockOptions, error) {
	if o.Holder == "" {
		return o, errors.New("holder is empty")
	}
	if o.Duration < time.Second {
		return o, fmt.Errorf("lease duration %s is under 1s", o.Duration)
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = o.Duration * 2 / 3
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = o.Duration / 6
	}
	if o.RenewDeadline >= o.Duration {
		return o, fmt.Errorf("renew deadline %s is not shorter than the lease duration %s", o.RenewDeadline, o.Duration)
	}
	if o.RetryPeriod <= 0 || o.RetryPeriod >= o.RenewDeadline {
		return o, fmt.Errorf("retry period %s is not between 0 and the renew deadline %s", o.RetryPeriod, o.RenewDeadline)
	}
	return o, nil
}

// requestTimeout bounds each Lease request, so one stalled connection
// cannot use up the renew deadline alone.
func (o LockOptions) requestTimeout() time.Duration { return o.RenewDeadline / 2 }

// lockIdentity is what a Lock writes as the Lease's holder: unique per
// Lock, so that a Lease is only ever one's own within one Lock. A daemon's
// next run (a new Lock, same Holder) finds the Lease released by Unlock,
// or waits for it to expire like anyone else's: the previous run lost it,
// and may have writes in flight.
func lockIdentity(holder, cluster string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error
	return fmt.Sprintf("%s/%s/%s", holder, cluster, hex.EncodeToString(b))
}

// LockHeldError is Lock's error when someone else held the Lease for the
// whole wait.
type LockHeldError struct {
	Cluster string
	Holder  string
	// Since is when the holder acquired the Lease (by its clock).
	Since time.Time
}

func (e *LockHeldError) Error() string {
	since := ""
	if !e.Since.IsZero() {
		since = " since " + e.Since.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("cluster %q: locked by %q%s", e.Cluster, e.Holder, since)
}

// Lock is a held writer lock on one cluster. Its renewals run in a goroutine
// until Unlock, or until the context given to Lock ends. While it is valid
// the Cluster's mutating requests carry a deadline within its validity;
// once it is lost or unlocked they are refused with ErrFenced.
type Lock struct {
	c      *Cluster
	holder string
	opts   LockOptions
	term   *term

	lost     chan struct{}
	lostOnce sync.Once
	stop     context.CancelFunc
	done     chan struct{} // closed when the renewal goroutine has returned
	unlocked atomic.Bool
	taken    atomic.Bool // someone else holds the Lease now

	// ended is closed when the lock is lost or unlocked; endErr, a
	// *FencedError, is set before.
	ended  chan struct{}
	endErr error

	// lease is the last Lease this lock wrote. The renewal goroutine owns it
	// until done is closed; Unlock reads it after that.
	lease *coordinationv1.Lease
}

// Lock takes the cluster's writer Lease (in SystemNamespace), waiting up to
// opts.Wait while someone else holds it, and arms the Cluster's fence with
// it (a Lock on a Cluster whose earlier Lock ended re-arms it). A Lease
// held by someone else is taken over only after this process has seen its
// record (holder, renewTime, resourceVersion) stay unchanged for its lease
// duration, measured on the local monotonic clock: a holder with a skewed
// clock that keeps renewing keeps its Lease. Every write is conditional on
// the resourceVersion read, so of two writers racing for the Lease exactly
// one wins. When the wait ends with the Lease still held, the error is a
// *LockHeldError naming the holder.
//
// A Lease is one's own only within one Lock: a later Lock with the same
// Holder (a daemon's next run) gets a new identity, so it finds the Lease
// free if the previous run unlocked, and otherwise waits for it to expire
// like anyone else's.
//
// The fence guards the Cluster, not a goroutine: a new Lock re-arms it for
// every client of this Cluster. Lock a Cluster again only once the
// previous run's goroutines have returned, or connect a new Cluster.
//
// Renewals stop when ctx ends, and the lock is lost then: pass a context
// that lives as long as the lock is needed.
func (c *Cluster) Lock(ctx context.Context, opts LockOptions) (*Lock, error) {
	l, err := c.lock(ctx, opts)
	if err != nil {
		var held *LockHeldError
		if errors.As(err, &held) {
			return nil, err
		}
		return nil, fmt.Errorf("cluster %q: lock: %w", c.name, err)
	}
	return l, nil
}

func (c *Cluster) lock(ctx context.Context, opts LockOptions) (*Lock, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	id := lockIdentity(opts.Holder, c.name)
	var seen observation
	deadline := time.Now().Add(opts.Wait)
	for {
		start := time.Now()
		lease, held, err := c.tryAcquire(ctx, id, opts, &seen)
		if err != nil {
			return nil, err
		}
		if lease != nil {
			return c.startLock(ctx, id, opts, lease, start), nil
		}
		if held == nil { // lost a race for a free Lease: look again now
			continue
		}
		left := time.Until(deadline)
		if left <= 0 {
			e := &LockHeldError{Cluster: c.name, Holder: holderOf(held)}
			if held.Spec.AcquireTime != nil {
				e.Since = held.Spec.AcquireTime.Time
			}
			return nil, e
		}
		t := time.NewTimer(min(lockRetry, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (c *Cluster) startLock(ctx context.Context, id string, opts LockOptions, lease *coordinationv1.Lease, start time.Time) *Lock {
	rctx, stop := context.WithCancel(ctx)
	l := &Lock{
		c:      c,
		holder: id,
		opts:   opts,
		term:   newTerm(start, opts.RenewDeadline),
		lost:   make(chan struct{}),
		stop:   stop,
		done:   make(chan struct{}),
		ended:  make(chan struct{}),
		lease:  lease,
	}
	c.fence.arm(l.term)
	c.log.Debug("locked", "holder", id)
	go l.renewLoop(rctx)
	return l
}

// Holder returns the identity this Lock wrote into the Lease:
// opts.Holder/<cluster>/<random token>.
func (l *Lock) Holder() string { return l.holder }

// Lost is closed when the lock is lost: no renewal succeeded within
// RenewDeadline of the start of the last successful one, someone else took
// the Lease, or the context given to Lock ended. From then on the Cluster
// refuses writes. Unlock does not close it.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Context returns a context derived from parent that is cancelled when the
// lock is lost or unlocked, with a *FencedError (errors.Is ErrFenced) as
// its cause. A run does its work under it so that it stops at once; the
// fence refuses the writes of whatever does not stop (Helm's goroutines).
func (l *Lock) Context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	go func() {
		select {
		case <-l.ended:
			cancel(l.endErr)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}

// finish ends the lock's term for writes and cancels its contexts.
func (l *Lock) finish(reason string) bool {
	if !l.term.end(errors.New(reason)) {
		return false
	}
	l.endErr = &FencedError{Cluster: l.c.name, Reason: reason}
	close(l.ended)
	return true
}

func (l *Lock) markLost(reason string) {
	l.lostOnce.Do(func() {
		l.finish("lock lost: " + reason)
		l.c.log.Warn("lock lost", "holder", l.holder, "reason", reason)
		close(l.lost)
	})
}

// Unlock closes the fence, waits for writes still in flight (each ends by
// the lock's validity at the latest), stops renewing and releases the
// Lease (clears its holder, keeping the object and its transition count),
// conditional on it still being ours. A lock whose validity passed, or
// whose Lease someone else took, is not released (its Lease expires or is
// theirs) and Unlock returns an error wrapping ErrLockLost; one lost only
// because the context given to Lock ended is still valid and is released.
// Calling it again returns nil.
func (l *Lock) Unlock(ctx context.Context) error {
	if l.unlocked.Swap(true) {
		return nil
	}
	l.finish("lock released")
	drained := l.term.drain(ctx)
	l.stop()
	<-l.done
	if l.taken.Load() || l.term.expired(time.Now()) {
		return fmt.Errorf("cluster %q: unlock: %w", l.c.name, ErrLockLost)
	}
	if drained != nil {
		// Releasing now would let someone in while our write may land.
		return fmt.Errorf("cluster %q: unlock: not released: %w", l.c.name, drained)
	}
	leases := l.c.clientset.CoordinationV1().Leases(SystemNamespace)
	for attempt := 0; attempt < 2; attempt++ {
		next := l.lease.DeepCopy()
		now := metav1.NewMicroTime(time.Now())
		next.Spec.HolderIdentity = nil
		next.Spec.AcquireTime = nil
		next.Spec.RenewTime = &now
		err := leaseCall(ctx, l.opts.requestTimeout(), func(ctx context.Context) error {
			_, err := leases.Update(ctx, next, metav1.UpdateOptions{FieldManager: fieldManager})
			return err
		})
		if err == nil {
			l.c.log.Debug("unlocked", "holder", l.holder)
			return nil
		}
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("cluster %q: unlock: %w", l.c.name, err)
		}
		var cur *coordinationv1.Lease
		gerr := leaseCall(ctx, l.opts.requestTimeout(), func(ctx context.Context) error {
			var err error
			cur, err = leases.Get(ctx, LeaseName, metav1.GetOptions{})
			return err
		})
		if gerr != nil || holderOf(cur) != l.holder {
			return fmt.Errorf("cluster %q: unlock: %w", l.c.name, ErrLockLost)
		}
		l.lease = cur
	}
	return fmt.Errorf("cluster %q: unlock: lease keeps changing", l.c.name)
}

// inSystemNamespace runs a write into SystemNamespace, creating the
// namespace and retrying once if the write failed because it was missing.
// Checking first would cost a request on every call.
func (c *Cluster) inSystemNamespace(ctx context.Context, write func() error) error {
	err := write()
	if !namespaceMissing(err, SystemNamespace) {
		return err
	}
	if err := c.ensureNamespace(ctx, SystemNamespace); err != nil {
		return err
	}
	return write()
}
