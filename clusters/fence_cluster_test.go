package clusters

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// writerLabel marks which of the test's two writers wrote a Helm revision.
const writerLabel = "tandem.io/test-writer"

// TestFencedWriterStalledPastLease is issue 8 item 4's proof. Writer A
// reaches the real API server through a proxy, holds the lock with a short
// lease and keeps upgrading a real Helm release and writing the state
// record. The proxy then stalls A's connection past the lease; writer B,
// connected directly, waits and takes the lock over once it has seen A's
// Lease unchanged for a lease duration; then the proxy lets A's traffic
// through again, dropping what A gave up on. A must have counted the lock
// lost before B got it, the proxy must have forwarded no write of A's from
// the moment A's lock stopped being valid, A's writes after that fail with
// ErrFenced, and Helm's history must not interleave A's revisions with B's.
func TestFencedWriterStalledPastLease(t *testing.T) {
	t.Run("stalled between requests", func(t *testing.T) {
		stalledWriterScenario(t, func(p *faultProxy, _ string) time.Time {
			p.stall()
			return time.Now()
		})
	})
	// The network dies just as A's Helm upgrade sends a write to one of the
	// release's objects: the write is held, Helm's goroutine is mid-upgrade.
	t.Run("stalled mid-upgrade", func(t *testing.T) {
		stalledWriterScenario(t, func(p *faultProxy, ns string) time.Time {
			stalled := p.stallWhen(func(r *http.Request) bool {
				return r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/api/v1/namespaces/"+ns+"/configmaps/")
			})
			select {
			case <-stalled:
			case <-time.After(time.Minute):
				t.Fatal("A sent no object write within a minute")
			}
			return time.Now()
		})
	})
}

// stalledWriterScenario runs TestFencedWriterStalledPastLease with a given
// way of stalling A's connection; stall returns when the stall started.
func stalledWriterScenario(t *testing.T, stall func(p *faultProxy, ns string) time.Time) {
	noHistoryLimit := func(o *Options) { o.MaxHistory = 0 }
	ctx, b, e := connect(t, noHistoryLimit)
	cs := adminClient(t, e)
	_ = cs.CoordinationV1().Leases(SystemNamespace).Delete(ctx, LeaseName, metav1.DeleteOptions{})
	upstream, err := e.RESTConfig(testCluster)
	if err != nil {
		t.Fatal(err)
	}
	p := newFaultProxy(t, upstream)
	a := connectVia(ctx, t, p, noHistoryLimit)
	ns := testNamespace(t)
	ch := loadChart(t, "web")
	timing := LockOptions{Duration: 5 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 600 * time.Millisecond}
	request := func(writer string, n int) ReleaseRequest {
		return ReleaseRequest{Name: "web", Namespace: ns, Chart: ch,
			Values: map[string]any{"message": fmt.Sprintf("%s-%d", writer, n)},
			Labels: map[string]string{writerLabel: writer}, Description: writer}
	}

	aOpts := timing
	aOpts.Holder = "a@test"
	la, err := a.Lock(ctx, aOpts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Install(ctx, request("a", 0)); err != nil {
		t.Fatal(err)
	}
	var lostAt time.Time
	lostSeen := make(chan struct{})
	go func() {
		select {
		case <-la.Lost():
			lostAt = time.Now()
		case <-ctx.Done():
		}
		close(lostSeen)
	}()
	lost := func() (time.Time, bool) { // lostAt, once the watcher set it
		select {
		case <-lostSeen:
			return lostAt, !lostAt.IsZero()
		default:
			return time.Time{}, false
		}
	}

	// A's writer runs like a reconcile: Helm under the lock's context, and
	// state writes under a context that ignores the loss, as Helm's own
	// goroutines and storage writes do. It stops only when told.
	type attempt struct {
		at  time.Time
		err error
	}
	var (
		mu        sync.Mutex
		upgrades  []attempt
		stateErrs []attempt
		stateOK   []time.Time
	)
	actx, acancel := la.Context(ctx)
	defer acancel()
	stopA := make(chan struct{})
	aDone := make(chan struct{})
	go func() {
		defer close(aDone)
		for n := 1; ; n++ {
			select {
			case <-stopA:
				return
			default:
			}
			_, err := a.Upgrade(actx, request("a", n))
			serr := a.WriteState(ctx, State{Cluster: testCluster, Commit: fmt.Sprintf("a-%d", n)})
			now := time.Now()
			mu.Lock()
			upgrades = append(upgrades, attempt{now, err})
			if serr != nil {
				stateErrs = append(stateErrs, attempt{now, serr})
			} else {
				stateOK = append(stateOK, now)
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	stopWriter := sync.OnceFunc(func() { close(stopA); <-aDone })
	defer stopWriter()
	waitFor(t, 90*time.Second, "two upgrades by A", func() bool {
		mu.Lock()
		defer mu.Unlock()
		ok := 0
		for _, u := range upgrades {
			if u.err == nil {
				ok++
			}
		}
		return ok >= 2
	})
	select {
	case <-la.Lost():
		t.Fatal("A lost the lock before the stall; the machine is too slow for this lease")
	default:
	}

	stalledAt := stall(p, ns)
	bOpts := timing
	bOpts.Holder = "b@test"
	bOpts.Wait = time.Minute
	lb, err := b.Lock(ctx, bOpts)
	if err != nil {
		t.Fatal(err)
	}
	bLockedAt := time.Now()
	var aValidUntil time.Time
	if at, ok := lost(); ok {
		aValidUntil = la.term.deadline()
		if !at.Before(bLockedAt) {
			t.Errorf("A counted the lock lost %v after B took it", at.Sub(bLockedAt))
		}
	} else {
		t.Errorf("B took the lock %v after the stall while A still counted it held", bLockedAt.Sub(stalledAt))
		aValidUntil = bLockedAt
	}

	// B recovers the revision A may have left pending, and upgrades. B's
	// failures are reported, not fatal, so the checks below always run.
	hist, err := b.History(ctx, ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	if last := hist[len(hist)-1]; last.Pending() {
		if err := b.MarkFailed(ctx, ns, "web", last.Revision, "left by a writer that lost the lock"); err != nil {
			t.Errorf("B: %v", err)
		}
	}
	if _, err := b.Upgrade(ctx, request("b", 1)); err != nil {
		t.Errorf("B: %v", err)
	}
	p.unstall()
	// A's writer goes on after the un-stall; B keeps working alongside.
	for n := 2; n <= 4; n++ {
		time.Sleep(500 * time.Millisecond)
		if _, err := b.Upgrade(ctx, request("b", n)); err != nil {
			t.Errorf("B: %v", err)
		}
		if err := b.WriteState(ctx, State{Cluster: testCluster, Commit: fmt.Sprintf("b-%d", n)}); err != nil {
			t.Errorf("B: %v", err)
		}
	}
	stopWriter()

	// A's writes now fail with ErrFenced, naming the cluster and the loss.
	err = a.WriteState(ctx, State{Cluster: testCluster, Commit: "a-late"})
	if !errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), `cluster "blue": write refused: lock lost`) {
		t.Errorf("A's WriteState after the loss = %v, want ErrFenced saying the lock was lost", err)
	}
	if _, err := a.Upgrade(ctx, request("a", 99)); !errors.Is(err, ErrFenced) {
		t.Errorf("A's Upgrade after the loss = %v, want ErrFenced", err)
	}
	if err := la.Unlock(ctx); !errors.Is(err, ErrLockLost) {
		t.Errorf("A's Unlock() = %v, want ErrLockLost", err)
	}
	if err := lb.Unlock(ctx); err != nil {
		t.Errorf("B's Unlock() = %v", err)
	}

	mu.Lock()
	for _, ok := range stateOK {
		if !ok.Before(aValidUntil) {
			t.Errorf("A's state write succeeded %v after its lock stopped being valid", ok.Sub(aValidUntil))
		}
	}
	fenced := 0
	for _, s := range stateErrs {
		if s.at.After(aValidUntil) && errors.Is(s.err, ErrFenced) {
			fenced++
		}
	}
	if fenced == 0 {
		t.Errorf("A's writer saw no ErrFenced after the loss; its errors: %v", stateErrs)
	}
	mu.Unlock()

	// The proxy saw everything A sent.
	var forwardedAfter, droppedAfter int
	for _, r := range p.records() {
		if r.At.Before(stalledAt) {
			continue
		}
		verb := "forwarded"
		if r.Dropped {
			verb = "dropped"
		}
		t.Logf("proxy +%v %s %s %s", r.At.Sub(stalledAt).Round(time.Millisecond), verb, r.Method, r.Path)
		if r.Dropped {
			droppedAfter++
			continue
		}
		forwardedAfter++
		if r.mutating() && !r.At.Before(aValidUntil) {
			t.Errorf("proxy forwarded A's %s %s %v after A's lock stopped being valid", r.Method, r.Path, r.At.Sub(aValidUntil))
		}
	}
	lostAfter := "never"
	if at, ok := lost(); ok {
		lostAfter = at.Sub(stalledAt).String()
	}
	t.Logf("stall at %s; after it: A valid until +%v, A lost at +%s, B locked at +%v; the proxy forwarded %d and dropped %d of A's requests",
		stalledAt.Format("15:04:05.000"), aValidUntil.Sub(stalledAt), lostAfter, bLockedAt.Sub(stalledAt), forwardedAfter, droppedAfter)

	// helm history: once B has written a revision, A writes none.
	hist, err = b.History(ctx, ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	var writers []string
	seenB := false
	for _, r := range hist {
		w := r.Labels[writerLabel]
		writers = append(writers, fmt.Sprintf("%d:%s:%s", r.Revision, w, r.Status))
		if w == "b" {
			seenB = true
		} else if seenB {
			t.Errorf("revision %d (%s) was written by %q after B's first revision", r.Revision, r.Status, w)
		}
	}
	t.Logf("history: %s", strings.Join(writers, " "))
	st, err := b.ReadState(ctx)
	if err != nil || st == nil || st.Commit != "b-4" {
		t.Errorf("state after both writers = %+v, %v; want B's last write b-4", st, err)
	}
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestUnlockWaitsForWritesInFlight: a released Lease can be taken at once,
// so Unlock must not release it while a write it admitted may still land.
// The proxy holds A's state write; Unlock, called meanwhile, keeps the
// Lease until the write has finished, and only then releases it.
func TestUnlockWaitsForWritesInFlight(t *testing.T) {
	ctx, _, e := connect(t)
	cs := adminClient(t, e)
	freeLease(ctx, t, cs)
	upstream, err := e.RESTConfig(testCluster)
	if err != nil {
		t.Fatal(err)
	}
	p := newFaultProxy(t, upstream)
	a := connectVia(ctx, t, p)
	l, err := a.Lock(ctx, LockOptions{Holder: "a@test", Duration: 8 * time.Second, RenewDeadline: 6 * time.Second, RetryPeriod: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stalled := p.stallWhen(func(r *http.Request) bool {
		return r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/configmaps/"+StateConfigMap)
	})
	wrote := make(chan error, 1)
	go func() { wrote <- a.WriteState(ctx, State{Cluster: testCluster, Commit: "in flight"}) }()
	<-stalled
	unlocked := make(chan error, 1)
	go func() { unlocked <- l.Unlock(ctx) }()
	time.Sleep(time.Second)
	select {
	case err := <-unlocked:
		t.Fatalf("Unlock() returned (%v) while a write was in flight", err)
	default:
	}
	got, err := cs.CoordinationV1().Leases(SystemNamespace).Get(ctx, LeaseName, metav1.GetOptions{})
	if err != nil || holderOf(got) != l.Holder() {
		t.Errorf("with a write in flight the Lease holder is %q (%v), want still %q", holderOf(got), err, l.Holder())
	}
	p.unstall()
	if err := <-wrote; err != nil {
		t.Errorf("the write in flight: %v", err)
	}
	if err := <-unlocked; err != nil {
		t.Errorf("Unlock() = %v", err)
	}
	var wroteAt, releasedAt time.Time
	for _, r := range p.records() {
		switch {
		case r.Dropped:
		case r.Method == http.MethodPatch && strings.HasSuffix(r.Path, "/configmaps/"+StateConfigMap):
			wroteAt = r.At
		case r.Method == http.MethodPut && strings.HasSuffix(r.Path, "/leases/"+LeaseName):
			releasedAt = r.At // the last Lease write is the release
		}
	}
	if wroteAt.IsZero() || !releasedAt.After(wroteAt) {
		t.Errorf("state write forwarded at %v, Lease release at %v; want the release after the write", wroteAt, releasedAt)
	}
	if got, err := cs.CoordinationV1().Leases(SystemNamespace).Get(ctx, LeaseName, metav1.GetOptions{}); err != nil || holderOf(got) != "" {
		t.Errorf("after Unlock the Lease holder is %q (%v), want released", holderOf(got), err)
	}
}
