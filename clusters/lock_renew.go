package clusters

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// errLeaseTaken means another holder owns the Lease now.
var errLeaseTaken = errors.New("lease taken by another holder")

// renewLoop renews every RetryPeriod and declares the lock lost the moment
// its validity ends without a successful renewal.
func (l *Lock) renewLoop(ctx context.Context) {
	defer close(l.done)
	for {
		wait := min(l.opts.RetryPeriod, time.Until(l.term.deadline()))
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			if !l.unlocked.Load() {
				l.markLost("context ended: " + ctx.Err().Error())
			}
			return
		case <-t.C:
		}
		start := time.Now()
		if l.term.expired(start) {
			l.markLost("not renewed within the renew deadline")
			return
		}
		// A renewal landing after the validity ended would be of no use.
		deadline := l.term.deadline()
		if d := start.Add(l.opts.requestTimeout()); d.Before(deadline) {
			deadline = d
		}
		rctx, cancel := context.WithDeadline(leaseRequest(ctx), deadline)
		err := l.renewOnce(rctx)
		cancel()
		switch {
		case err == nil:
			l.term.renewed(start)
		case ctx.Err() != nil:
			// Unlock or the caller's context stopped us; the select above decides.
		case errors.Is(err, errLeaseTaken):
			l.taken.Store(true)
			l.markLost(err.Error())
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
