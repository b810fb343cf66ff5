package clusters

import (
	"context"
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

// LockOptions configures Lock.
type LockOptions struct {
	// Holder identifies this writer in the Lease, e.g. "ci@host:pid"; it
	// must be unique per process, since a Lease held under the same holder
	// is taken as one's own.
	Holder string
	// Wait is how long Lock waits for a Lease someone else holds; 0 fails at once.
	Wait time.Duration
	// Duration is the Lease duration: the lock is renewed every Duration/3,
	// and a Lease not renewed for Duration (its holder died) is taken over.
	Duration time.Duration
}

// DefaultLockOptions returns user@host:pid as holder, no waiting and a 30 s
// lease.
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
		Holder:   fmt.Sprintf("%s@%s:%d", who, host, os.Getpid()),
		Duration: 30 * time.Second,
	}
}

// LockHeldError is Lock's error when someone else held the Lease for the
// whole wait.
type LockHeldError struct {
	Cluster string
	Holder  string
	// Since is when the holder acquired the Lease.
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
// until Unlock, or until the context given to Lock ends.
type Lock struct {
	c        *Cluster
	holder   string
	duration time.Duration

	lost     chan struct{}
	lostOnce sync.Once
	stop     context.CancelFunc
	done     chan struct{} // closed when the renewal goroutine has returned
	unlocked atomic.Bool

	// lease is the last Lease this lock wrote. The renewal goroutine owns it
	// until done is closed; Unlock reads it after that.
	lease *coordinationv1.Lease
}

// Lock takes the cluster's writer Lease (in SystemNamespace), waiting up to
// opts.Wait while someone else holds it; a Lease whose holder stopped
// renewing it (renewTime + duration in the past) is taken over. Every write
// is conditional on the resourceVersion read, so of two writers racing for
// the Lease exactly one wins. When the wait ends with the Lease still held,
// the error is a *LockHeldError naming the holder.
//
// Renewals stop when ctx ends, after which the lock is soon lost: pass a
// context that lives as long as the lock is needed.
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
	if opts.Holder == "" {
		return nil, errors.New("holder is empty")
	}
	if opts.Duration < time.Second {
		return nil, fmt.Errorf("lease duration %s is under 1s", opts.Duration)
	}
	deadline := time.Now().Add(opts.Wait)
	for {
		lease, held, err := c.tryAcquire(ctx, opts)
		if err != nil {
			return nil, err
		}
		if lease != nil {
			return c.startLock(ctx, opts, lease), nil
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

// tryAcquire makes one attempt at the Lease. It returns the Lease as written
// when acquired; the Lease as read when someone else validly holds it; and
// neither when a concurrent writer changed it between read and write.
func (c *Cluster) tryAcquire(ctx context.Context, opts LockOptions) (acquired, held *coordinationv1.Lease, err error) {
	leases := c.clientset.CoordinationV1().Leases(SystemNamespace)
	now := time.Now()
	cur, err := leases.Get(ctx, LeaseName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: LeaseName, Namespace: SystemNamespace}}
		claim(l, opts, now)
		var created *coordinationv1.Lease
		err := c.inSystemNamespace(ctx, func() error {
			var err error
			created, err = leases.Create(ctx, l, metav1.CreateOptions{FieldManager: fieldManager})
			return err
		})
		if apierrors.IsAlreadyExists(err) {
			return nil, nil, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("create lease: %w", err)
		}
		return created, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read lease: %w", err)
	}
	if !claimable(cur, opts.Holder, now) {
		return nil, cur, nil
	}
	next := cur.DeepCopy()
	claim(next, opts, now)
	updated, err := leases.Update(ctx, next, metav1.UpdateOptions{FieldManager: fieldManager})
	if apierrors.IsConflict(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("take lease: %w", err)
	}
	if prev := holderOf(cur); prev != "" && prev != opts.Holder {
		c.log.Info("took over expired lock", "previous_holder", prev)
	}
	return updated, nil, nil
}

// claimable reports whether holder may take the Lease now: it is free
// (released), already its own, or expired.
func claimable(l *coordinationv1.Lease, holder string, now time.Time) bool {
	h := holderOf(l)
	if h == "" || h == holder {
		return true
	}
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return true
	}
	expiry := l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
	return now.After(expiry)
}

// claim writes holder's claim into l, counting a transition when the holder
// changes.
func claim(l *coordinationv1.Lease, opts LockOptions, now time.Time) {
	t := metav1.NewMicroTime(now)
	secs := int32((opts.Duration + time.Second - 1) / time.Second)
	if holderOf(l) != opts.Holder {
		var n int32 // a new Lease starts at 0
		switch {
		case l.Spec.LeaseTransitions != nil:
			n = *l.Spec.LeaseTransitions + 1
		case holderOf(l) != "":
			n = 1
		}
		l.Spec.LeaseTransitions = &n
		l.Spec.AcquireTime = &t
	}
	holder := opts.Holder
	l.Spec.HolderIdentity = &holder
	l.Spec.LeaseDurationSeconds = &secs
	l.Spec.RenewTime = &t
}

func holderOf(l *coordinationv1.Lease) string {
	if l == nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func (c *Cluster) startLock(ctx context.Context, opts LockOptions, lease *coordinationv1.Lease) *Lock {
	rctx, stop := context.WithCancel(ctx)
	l := &Lock{
		c:        c,
		holder:   opts.Holder,
		duration: opts.Duration,
		lost:     make(chan struct{}),
		stop:     stop,
		done:     make(chan struct{}),
		lease:    lease,
	}
	c.log.Debug("locked", "holder", opts.Holder)
	go l.renewLoop(rctx)
	return l
}

// Lost is closed when the lock is lost: renewing failed for a whole lease
// duration, someone else took the Lease, or the context given to Lock
// ended. Unlock does not close it.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

func (l *Lock) markLost(reason string) {
	l.lostOnce.Do(func() {
		l.c.log.Warn("lock lost", "holder", l.holder, "reason", reason)
		close(l.lost)
	})
}

// errLeaseTaken means another holder owns the Lease now.
var errLeaseTaken = errors.New("lease taken by another holder")

func (l *Lock) renewLoop(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(l.duration / 3)
	defer t.Stop()
	renewed := time.Now()
	for {
		select {
		case <-ctx.Done():
			if !l.unlocked.Load() {
				l.markLost("context ended: " + ctx.Err().Error())
			}
			return
		case <-t.C:
		}
		err := l.renewOnce(ctx)
		switch {
		case err == nil:
			renewed = time.Now()
		case ctx.Err() != nil:
			// Unlock or the caller's context stopped us; the select above decides.
		case errors.Is(err, errLeaseTaken):
			l.markLost(err.Error())
			return
		case time.Since(renewed) >= l.duration:
			l.markLost("not renewed for a lease duration: " + err.Error())
			return
		default:
			l.c.log.Warn("lock renewal failed; retrying", "error", err)
		}
	}
}

// renewOnce moves the Lease's renewTime forward, conditional on the Lease
// being the one this lock last wrote; if it changed, it is re-read and
// renewed only if still ours.
func (l *Lock) renewOnce(ctx context.Context) error {
	leases := l.c.clientset.CoordinationV1().Leases(SystemNamespace)
	for attempt := 0; attempt < 2; attempt++ {
		next := l.lease.DeepCopy()
		now := metav1.NewMicroTime(time.Now())
		next.Spec.RenewTime = &now
		updated, err := leases.Update(ctx, next, metav1.UpdateOptions{FieldManager: fieldManager})
		if err == nil {
			l.lease = updated
			return nil
		}
		if apierrors.IsNotFound(err) {
			return errLeaseTaken
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		cur, err := leases.Get(ctx, LeaseName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return errLeaseTaken
		}
		if err != nil {
			return err
		}
		if holderOf(cur) != l.holder {
			return fmt.Errorf("%w %q", errLeaseTaken, holderOf(cur))
		}
		l.lease = cur
	}
	return errors.New("lease keeps changing")
}

// Unlock stops renewing and releases the Lease (clears its holder, keeping
// the object and its transition count), conditional on it still being
// ours. If another holder has it by now, it returns an error wrapping
// ErrLockLost. Calling it again returns nil.
func (l *Lock) Unlock(ctx context.Context) error {
	if l.unlocked.Swap(true) {
		return nil
	}
	l.stop()
	<-l.done
	leases := l.c.clientset.CoordinationV1().Leases(SystemNamespace)
	for attempt := 0; attempt < 2; attempt++ {
		next := l.lease.DeepCopy()
		now := metav1.NewMicroTime(time.Now())
		next.Spec.HolderIdentity = nil
		next.Spec.AcquireTime = nil
		next.Spec.RenewTime = &now
		_, err := leases.Update(ctx, next, metav1.UpdateOptions{FieldManager: fieldManager})
		if err == nil {
			l.c.log.Debug("unlocked", "holder", l.holder)
			return nil
		}
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("cluster %q: unlock: %w", l.c.name, err)
		}
		cur, gerr := leases.Get(ctx, LeaseName, metav1.GetOptions{})
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
