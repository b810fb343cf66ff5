package clusters

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// freeLease deletes the tandem Lease, whatever earlier tests left.
func freeLease(ctx context.Context, t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	err := cs.CoordinationV1().Leases(SystemNamespace).Delete(ctx, LeaseName, metav1.DeleteOptions{})
	if err != nil && !strings.Contains(err.Error(), "not found") {
		t.Fatal(err)
	}
}

// putLease writes the tandem Lease as another process would, creating it
// if needed; renewTime is what that process's clock says.
func putLease(ctx context.Context, t *testing.T, cs kubernetes.Interface, holder string, renewTime time.Time, seconds int32) {
	t.Helper()
	leases := cs.CoordinationV1().Leases(SystemNamespace)
	cur, err := leases.Get(ctx, LeaseName, metav1.GetOptions{})
	if err != nil {
		cur = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: LeaseName, Namespace: SystemNamespace}}
	}
	rt := metav1.NewMicroTime(renewTime)
	cur.Spec.HolderIdentity, cur.Spec.RenewTime, cur.Spec.AcquireTime, cur.Spec.LeaseDurationSeconds = &holder, &rt, &rt, &seconds
	if cur.ResourceVersion == "" {
		_, err = leases.Create(ctx, cur, metav1.CreateOptions{})
	} else {
		_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestLockHeldWaitUnlock(t *testing.T) {
	ctx, c, e := connect(t)
	freeLease(ctx, t, adminClient(t, e))
	a, err := c.Lock(ctx, LockOptions{Holder: "a@test:1", Duration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.Holder(), "a@test:1/blue/") {
		t.Errorf("Holder() = %q, want a@test:1/blue/<token>", a.Holder())
	}
	_, err = c.Lock(ctx, LockOptions{Holder: "b@test:2", Wait: 2 * time.Second, Duration: 3 * time.Second})
	var held *LockHeldError
	if !errors.As(err, &held) || held.Holder != a.Holder() || held.Cluster != "blue" || held.Since.IsZero() {
		t.Fatalf("Lock(held) = %v, want *LockHeldError naming %s on blue", err, a.Holder())
	}
	if err := a.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(ctx); err != nil {
		t.Errorf("second Unlock() = %v, want nil", err)
	}
	// A daemon's next run: same holder, new Lock, the Lease was released.
	again, err := c.Lock(ctx, LockOptions{Holder: "a@test:1", Duration: 3 * time.Second})
	if err != nil {
		t.Fatalf("Lock() after Unlock = %v", err)
	}
	if again.Holder() == a.Holder() {
		t.Error("a new Lock reused the previous Lock's identity")
	}
	if err := again.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLockTwoClusterValuesOneServer is item 5: one process, one holder
// string, two Cluster values reaching the same API server (two kubeconfig
// contexts). Today both Locks succeeded, since a Lease held under one's own
// holder string was taken as one's own.
func TestLockTwoClusterValuesOneServer(t *testing.T) {
	ctx, c1, e := connect(t)
	freeLease(ctx, t, adminClient(t, e))
	c2 := connectCopy(ctx, t, e.Kubeconfig())
	opts := LockOptions{Holder: "ci@runner:42", Duration: 3 * time.Second}
	l1, err := c1.Lock(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l1.Unlock(ctx) }()
	l2, err := c2.Lock(ctx, opts)
	var held *LockHeldError
	if !errors.As(err, &held) || held.Holder != l1.Holder() {
		if l2 != nil {
			_ = l2.Unlock(ctx)
		}
		t.Fatalf("second Lock on the same server with the same holder = %v, want *LockHeldError naming %s", err, l1.Holder())
	}
}

// connectCopy connects to blue through a second kubeconfig context,
// "blue-copy", that names the same server and user.
func connectCopy(ctx context.Context, t *testing.T, kubeconfig string) *Cluster {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cp := *cfg.Contexts[testCluster]
	cfg.Contexts["blue-copy"] = &cp
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.Kubeconfig = path
	opts.Context = "blue-copy"
	c, err := Connect(ctx, "blue-copy", opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLockSkewedLiveHolderKeepsLease is item 4: a holder that keeps
// renewing, but whose clock is an hour behind (every renewTime it writes
// is an hour old), holds its lock. Judged by the remote renewTime it looks
// long expired; judged by what this process observes, it is alive.
func TestLockSkewedLiveHolderKeepsLease(t *testing.T) {
	ctx, c, e := connect(t)
	cs := adminClient(t, e)
	freeLease(ctx, t, cs)
	putLease(ctx, t, cs, "behind@test:7", time.Now().Add(-time.Hour), 2)
	hctx, stop := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		for {
			select {
			case <-hctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			leases := cs.CoordinationV1().Leases(SystemNamespace)
			l, err := leases.Get(hctx, LeaseName, metav1.GetOptions{})
			if err != nil || holderOf(l) != "behind@test:7" {
				return // stolen: the test's error below says so
			}
			rt := metav1.NewMicroTime(time.Now().Add(-time.Hour))
			l.Spec.RenewTime = &rt
			_, _ = leases.Update(hctx, l, metav1.UpdateOptions{})
		}
	}()
	l, err := c.Lock(ctx, LockOptions{Holder: "thief@test:8", Wait: 6 * time.Second, Duration: 2 * time.Second})
	stop()
	<-renewed
	var held *LockHeldError
	if !errors.As(err, &held) || held.Holder != "behind@test:7" {
		if l != nil {
			_ = l.Unlock(ctx)
		}
		t.Fatalf("Lock() on a live holder with a skewed clock = %v, want *LockHeldError naming behind@test:7", err)
	}
}

// TestLockDeadHolderAheadIsTakenOverAfterObservedDuration is item 4's
// other skew: a holder whose clock ran an hour ahead has died. Its
// renewTime lies in the future, yet its Lease is taken over once this
// process has seen it unchanged for its lease duration, and not sooner.
func TestLockDeadHolderAheadIsTakenOverAfterObservedDuration(t *testing.T) {
	ctx, c, e := connect(t)
	cs := adminClient(t, e)
	freeLease(ctx, t, cs)
	putLease(ctx, t, cs, "ahead@test:9", time.Now().Add(time.Hour), 2)
	start := time.Now()
	l, err := c.Lock(ctx, LockOptions{Holder: "next@test:10", Wait: 20 * time.Second, Duration: 3 * time.Second})
	if err != nil {
		t.Fatalf("Lock() on a dead holder whose clock ran ahead = %v, want it taken over", err)
	}
	defer func() { _ = l.Unlock(ctx) }()
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("took the Lease over after %v, before observing it unchanged for its 2s duration", took)
	}
	got, err := cs.CoordinationV1().Leases(SystemNamespace).Get(ctx, LeaseName, metav1.GetOptions{})
	if err != nil || holderOf(got) != l.Holder() || *got.Spec.LeaseTransitions != 1 {
		t.Errorf("Lease after takeover: holder %q (%v), want %q with one transition", holderOf(got), err, l.Holder())
	}
}

// TestLockRacersForADeadLease: of two Lock calls racing for a dead
// holder's Lease, exactly one wins.
func TestLockRacersForADeadLease(t *testing.T) {
	ctx, c, e := connect(t)
	cs := adminClient(t, e)
	freeLease(ctx, t, cs)
	putLease(ctx, t, cs, "dead@test:9", time.Now().Add(-time.Hour), 2)
	c2 := connectCopy(ctx, t, e.Kubeconfig())
	locks := make([]*Lock, 2)
	errs := make([]error, 2)
	done := make(chan int, 2)
	for i, cl := range []*Cluster{c, c2} {
		go func() {
			locks[i], errs[i] = cl.Lock(ctx, LockOptions{Holder: "racer@test", Wait: 6 * time.Second, Duration: 5 * time.Second})
			done <- i
		}()
	}
	<-done
	<-done
	var winners []*Lock
	for i := range 2 {
		var held *LockHeldError
		switch {
		case errs[i] == nil:
			winners = append(winners, locks[i])
		case errors.As(errs[i], &held) && strings.HasPrefix(held.Holder, "racer@test/"):
		default:
			t.Errorf("racer %d: %v", i, errs[i])
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d racers took the dead lease, want exactly 1", len(winners))
	}
	if err := winners[0].Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLockRenewsWhileHeld: a held lock outlives its lease many times over,
// stays valid and its Cluster keeps writing.
func TestLockRenewsWhileHeld(t *testing.T) {
	ctx, c, e := connect(t)
	freeLease(ctx, t, adminClient(t, e))
	l, err := c.Lock(ctx, LockOptions{Holder: "steady@test", Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
		t.Fatal("lock lost while renewing normally")
	case <-time.After(7 * time.Second):
	}
	if err := c.WriteState(ctx, State{Cluster: testCluster, Commit: "steady"}); err != nil {
		t.Errorf("WriteState() under a held lock = %v", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLockStolenFencesAndCancels: when someone else takes the Lease, Lost
// fires, the lock's Context ends with ErrFenced as cause, and the Cluster
// refuses writes, saying the lock was lost; reads still work.
func TestLockStolenFencesAndCancels(t *testing.T) {
	ctx, c, e := connect(t)
	cs := adminClient(t, e)
	freeLease(ctx, t, cs)
	l, err := c.Lock(ctx, LockOptions{Holder: "victim@test:3", Duration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	lctx, cancel := l.Context(ctx)
	defer cancel()
	if err := c.WriteState(lctx, State{Cluster: testCluster, Commit: "before"}); err != nil {
		t.Fatalf("WriteState() while locked = %v", err)
	}
	putLease(ctx, t, cs, "thief@test:4", time.Now(), 3)
	select {
	case <-l.Lost():
	case <-time.After(time.Minute): // a bound against hanging, not a timing assertion
		t.Fatal("Lost() not closed after the lease was stolen")
	}
	select {
	case <-lctx.Done():
		if !errors.Is(context.Cause(lctx), ErrFenced) {
			t.Errorf("lock context cause = %v, want ErrFenced", context.Cause(lctx))
		}
	case <-time.After(time.Minute):
		t.Fatal("lock context not cancelled on loss")
	}
	err = c.WriteState(ctx, State{Cluster: testCluster, Commit: "after"})
	if !errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), "lock lost") {
		t.Errorf("WriteState() after the loss = %v, want ErrFenced saying the lock was lost", err)
	}
	if st, err := c.ReadState(ctx); err != nil || st == nil || st.Commit != "before" {
		t.Errorf("ReadState() after the loss = %+v, %v; want the state written before", st, err)
	}
	if err := l.Unlock(ctx); !errors.Is(err, ErrLockLost) {
		t.Errorf("Unlock() after theft = %v, want ErrLockLost", err)
	}
	got, err := cs.CoordinationV1().Leases(SystemNamespace).Get(ctx, LeaseName, metav1.GetOptions{})
	if err != nil || holderOf(got) != "thief@test:4" {
		t.Errorf("after Unlock the lease holder is %q (%v), want the thief's", holderOf(got), err)
	}
}

// TestFenceAfterUnlockAndRearm: a never-locked Cluster writes freely;
// after Unlock it refuses writes; a new Lock on it (a daemon's next run)
// re-arms it.
func TestFenceAfterUnlockAndRearm(t *testing.T) {
	ctx, c, e := connect(t)
	freeLease(ctx, t, adminClient(t, e))
	if err := c.WriteState(ctx, State{Cluster: testCluster, Commit: "unlocked"}); err != nil {
		t.Fatalf("WriteState() on a never-locked Cluster = %v", err)
	}
	l, err := c.Lock(ctx, LockOptions{Holder: "run@test:1", Duration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	err = c.WriteState(ctx, State{Cluster: testCluster, Commit: "after unlock"})
	if !errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), "lock released") {
		t.Errorf("WriteState() after Unlock = %v, want ErrFenced saying the lock was released", err)
	}
	next, err := c.Lock(ctx, LockOptions{Holder: "run@test:1", Duration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteState(ctx, State{Cluster: testCluster, Commit: "next run"}); err != nil {
		t.Errorf("WriteState() under the next run's lock = %v", err)
	}
	if err := next.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}
