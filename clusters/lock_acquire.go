package clusters

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// leaseCall runs one Lease request with the Lock's marker (so the fence
// lets it through) and its own timeout.
func leaseCall(ctx context.Context, timeout time.Duration, call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(leaseRequest(ctx), timeout)
	defer cancel()
	return call(ctx)
}

// tryAcquire makes one attempt at the Lease. It returns the Lease as written
// when acquired; the Lease as read when someone else validly holds it; and
// neither when a concurrent writer changed it between read and write.
func (c *Cluster) tryAcquire(ctx context.Context, id string, opts LockOptions, seen *observation) (acquired, held *coordinationv1.Lease, err error) {
	leases := c.clientset.CoordinationV1().Leases(SystemNamespace)
	timeout := opts.requestTimeout()
	var cur *coordinationv1.Lease
	err = leaseCall(ctx, timeout, func(ctx context.Context) error {
		var err error
		cur, err = leases.Get(ctx, LeaseName, metav1.GetOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: LeaseName, Namespace: SystemNamespace}}
		claim(l, id, opts.Duration, time.Now())
		var created *coordinationv1.Lease
		err := leaseCall(ctx, timeout, func(ctx context.Context) error {
			return c.inSystemNamespace(ctx, func() error {
				var err error
				created, err = leases.Create(ctx, l, metav1.CreateOptions{FieldManager: fieldManager})
				return err
			})
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
	now := time.Now()
	seen.observe(cur, now)
	if !seen.claimable(cur, id, now, opts.Duration) {
		return nil, cur, nil
	}
	next := cur.DeepCopy()
	claim(next, id, opts.Duration, now)
	var updated *coordinationv1.Lease
	err = leaseCall(ctx, timeout, func(ctx context.Context) error {
		var err error
		updated, err = leases.Update(ctx, next, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if apierrors.IsConflict(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("take lease: %w", err)
	}
	if prev := holderOf(cur); prev != "" && prev != id {
		c.log.Info("took over expired lock", "previous_holder", prev, "unchanged_for", now.Sub(seen.at).Round(time.Millisecond))
	}
	return updated, nil, nil
}

// observation is when this process first saw the Lease record it last
// read. Whether someone else's Lease has expired is judged from it alone:
// comparing the record's renewTime with the local clock would let a
// skewed clock (ours or the holder's) steal a live lock.
type observation struct {
	key string
	at  time.Time // local, monotonic
}

// recordKey identifies one version of the Lease record.
func recordKey(l *coordinationv1.Lease) string {
	renewed := ""
	if l.Spec.RenewTime != nil {
		renewed = l.Spec.RenewTime.UTC().Format(time.RFC3339Nano)
	}
	return l.ResourceVersion + "|" + holderOf(l) + "|" + renewed
}

// observe records l as seen at now, restarting the clock if it changed.
func (o *observation) observe(l *coordinationv1.Lease, now time.Time) {
	if k := recordKey(l); k != o.key {
		o.key, o.at = k, now
	}
}

// claimable reports whether the Lock with identity id may take the Lease,
// as last observed, at now: it is free (released), already its own, or
// unchanged since observed for its lease duration (fallback when the
// record has none). The takeover write is conditional on the observed
// resourceVersion, so a record that changed unseen cannot be taken.
func (o *observation) claimable(l *coordinationv1.Lease, id string, now time.Time, fallback time.Duration) bool {
	h := holderOf(l)
	if h == "" || h == id {
		return true
	}
	if recordKey(l) != o.key {
		return false
	}
	d := fallback
	if l.Spec.LeaseDurationSeconds != nil && *l.Spec.LeaseDurationSeconds > 0 {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return now.Sub(o.at) >= d
}

// claim writes holder id's claim into l, counting a transition when the
// holder changes. The times written are for people (kubectl, helm); no
// decision here depends on them.
func claim(l *coordinationv1.Lease, id string, duration time.Duration, now time.Time) {
	t := metav1.NewMicroTime(now)
	secs := int32((duration + time.Second - 1) / time.Second)
	if holderOf(l) != id {
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
	l.Spec.HolderIdentity = &id
	l.Spec.LeaseDurationSeconds = &secs
	l.Spec.RenewTime = &t
}

func holderOf(l *coordinationv1.Lease) string {
	if l == nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}
