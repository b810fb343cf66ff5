package clusters

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/internal/syncbuf"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// leaderNamespace creates a namespace of the test's own for its leader Lease.
func leaderNamespace(ctx context.Context, t *testing.T, admin kubernetes.Interface) string {
	t.Helper()
	ns := testNamespace(t)
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	return ns
}

func leaderTestLogger(t *testing.T) *slog.Logger {
	var logs syncbuf.Buffer // the electors' logs, shown when a test fails
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("election logs:\n%s", logs.String())
		}
	})
	return slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fastLeader is a short election timing for tests.
func fastLeader(t *testing.T, ns, id string) LeaderOptions {
	return LeaderOptions{
		Namespace: ns, Name: "tandem-leader", Identity: id,
		LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 300 * time.Millisecond,
		Logger: leaderTestLogger(t).With("elector", id),
	}
}

// leaders counts the electors whose work runs at once; it must never exceed one.
type leaders struct {
	mu      sync.Mutex
	running int
	max     int
	events  []string
}

func (l *leaders) enter(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running++
	l.max = max(l.max, l.running)
	l.events = append(l.events, id+" started")
}

func (l *leaders) exit(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running--
	l.events = append(l.events, id+" stopped")
}

func (l *leaders) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 1 {
		t.Errorf("%d electors worked at once; events: %q", l.max, l.events)
	}
}

// elector runs Elect in the background and records what its callbacks saw.
type elector struct {
	id     string
	cancel context.CancelFunc
	done   chan error // Elect's result

	mu         sync.Mutex
	leading    bool
	terms      int
	stops      int // OnStoppedLeading calls
	causes     []error
	newLeaders []string
}

// startElector runs c.Elect; the work records itself in shared and, once its context ends,
// takes linger to stop, like a run winding down.
func startElector(ctx context.Context, t *testing.T, c *Cluster, opts LeaderOptions, shared *leaders, linger time.Duration) *elector {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	e := &elector{id: opts.Identity, cancel: cancel, done: make(chan error, 1)}
	cb := LeaderCallbacks{
		OnStartedLeading: func(ctx context.Context) {
			shared.enter(e.id)
			e.mu.Lock()
			e.leading = true
			e.terms++
			e.mu.Unlock()
			<-ctx.Done()
			e.mu.Lock()
			e.leading = false
			e.causes = append(e.causes, context.Cause(ctx))
			e.mu.Unlock()
			time.Sleep(linger)
			shared.exit(e.id)
		},
		OnStoppedLeading: func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.stops++
		},
		OnNewLeader: func(id string) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.newLeaders = append(e.newLeaders, id)
		},
	}
	go func() { e.done <- c.Elect(ctx, opts, cb) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-e.done:
		case <-time.After(time.Minute):
			t.Errorf("elector %s: Elect did not return after its context ended", e.id)
		}
	})
	return e
}

func (e *elector) isLeading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading
}

func (e *elector) snapshot() (terms, stops int, causes []error, newLeaders []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.terms, e.stops, append([]error(nil), e.causes...), append([]string(nil), e.newLeaders...)
}

// stop cancels the elector's context and waits for Elect to return.
func (e *elector) stop(t *testing.T) {
	t.Helper()
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			t.Fatalf("elector %s: Elect() = %v", e.id, err)
		}
		e.done <- nil // for the cleanup
	case <-time.After(time.Minute):
		t.Fatalf("elector %s: Elect did not return after its context ended", e.id)
	}
}

// eventually polls cond until it holds or the (generous) bound passes.
func eventually(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", bound, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// whoLeads returns the one leading elector, failing if none or several lead.
func whoLeads(t *testing.T, es ...*elector) *elector {
	t.Helper()
	var found []*elector
	for _, e := range es {
		if e.isLeading() {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d electors lead, want 1", len(found))
	}
	return found[0]
}

func TestElectOneLeaderAndHandover(t *testing.T) {
	ctx, c1, env := connect(t)
	_, c2, _ := connect(t)
	ns := leaderNamespace(ctx, t, adminClient(t, env))
	if holder, err := c1.LeaderOf(ctx, ns, "tandem-leader"); err != nil || holder != "" {
		t.Fatalf("LeaderOf(no Lease yet) = %q, %v; want \"\", nil", holder, err)
	}

	var shared leaders
	// The leader's work takes a while to stop: the Lease must not be released before it has.
	linger := 700 * time.Millisecond
	a := startElector(ctx, t, c1, fastLeader(t, ns, "a"), &shared, linger)
	b := startElector(ctx, t, c2, fastLeader(t, ns, "b"), &shared, linger)
	start := time.Now()
	eventually(t, 30*time.Second, "someone leads", func() bool { return a.isLeading() || b.isLeading() })
	t.Logf("a leader after %s", time.Since(start).Round(time.Millisecond))
	// Over two lease durations, exactly one leads and stays leader.
	first := whoLeads(t, a, b)
	time.Sleep(4 * time.Second)
	if got := whoLeads(t, a, b); got != first {
		t.Fatalf("leadership moved from %s to %s without a cause", first.id, got.id)
	}
	other := a
	if first == a {
		other = b
	}
	if holder, err := c1.LeaderOf(ctx, ns, "tandem-leader"); err != nil || holder != first.id {
		t.Errorf("LeaderOf() = %q, %v; want %q", holder, err, first.id)
	}
	if _, _, _, seen := other.snapshot(); len(seen) == 0 || seen[len(seen)-1] != first.id {
		t.Errorf("follower %s: OnNewLeader saw %q, want the leader %s last", other.id, seen, first.id)
	}

	// The leader shuts down: its work stops, then the Lease is released, so the follower
	// takes over without waiting for it to expire.
	stopping := time.Now()
	first.stop(t)
	t.Logf("the leader's Elect returned %s after its context ended", time.Since(stopping).Round(time.Millisecond))
	holder, err := c1.LeaderOf(ctx, ns, "tandem-leader")
	if err != nil || (holder != "" && holder != other.id) {
		t.Errorf("after the leader's Elect returned, LeaderOf() = %q, %v; want it released (\"\") or taken by %s", holder, err, other.id)
	}
	terms, stops, causes, seen := first.snapshot()
	if terms != 1 || stops != 1 || len(causes) != 1 || !errors.Is(causes[0], context.Canceled) {
		t.Errorf("former leader: %d terms, %d OnStoppedLeading, causes %v; want 1, 1, [context canceled]", terms, stops, causes)
	}
	if len(seen) == 0 || seen[0] != first.id {
		t.Errorf("former leader: OnNewLeader saw %q, want itself first", seen)
	}
	eventually(t, 10*time.Second, other.id+" leads after the release", other.isLeading)
	t.Logf("%s leads %s after the leader's context ended", other.id, time.Since(stopping).Round(time.Millisecond))
	shared.check(t)

	other.stop(t)
	if holder, err := c1.LeaderOf(ctx, ns, "tandem-leader"); err != nil || holder != "" {
		t.Errorf("after both stopped, LeaderOf() = %q, %v; want \"\"", holder, err)
	}
	if _, _, _, seen := other.snapshot(); len(seen) == 0 || seen[len(seen)-1] != "" {
		t.Errorf("%s: OnNewLeader saw %q, want the release (\"\") last", other.id, seen)
	}
}

// TestElectLeaderCutOff cuts the leader off from the API server: its work is cancelled with
// ErrLeadershipLost, before the other replica takes over, and the other one then leads.
func TestElectLeaderCutOff(t *testing.T) {
	ctx, direct, env := connect(t)
	ns := leaderNamespace(ctx, t, adminClient(t, env))
	cfg, err := env.RESTConfig(testCluster)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newFaultProxy(t, cfg)
	viaProxy := connectVia(ctx, t, proxy)

	// The leader's work must end before the takeover. Elect ends it RenewDeadline after the
	// start of the last renewal (6.5s); b takes over no earlier than LeaseDuration (8s) after
	// it saw that renewal. leaderelection alone would end it only after RetryPeriod plus
	// RenewDeadline plus the timeout of its attempt to release the Lease (10s), while b
	// takes over within 8s plus one jittered RetryPeriod: this timing fails the test by over
	// a second if Elect relied on leaderelection, and passes it by 1.5s.
	timing := func(id string) LeaderOptions {
		o := fastLeader(t, ns, id)
		o.LeaseDuration, o.RenewDeadline = 8*time.Second, 6500*time.Millisecond
		return o
	}
	var shared leaders
	a := startElector(ctx, t, viaProxy, timing("a"), &shared, 0)
	eventually(t, 30*time.Second, "a leads", a.isLeading)
	b := startElector(ctx, t, direct, timing("b"), &shared, 0)
	eventually(t, 30*time.Second, "b sees a lead", func() bool {
		_, _, _, seen := b.snapshot()
		return len(seen) > 0 && seen[len(seen)-1] == "a"
	})

	proxy.stall()
	stalled := time.Now()
	eventually(t, 30*time.Second, "a's work is cancelled", func() bool { return !a.isLeading() })
	t.Logf("a's work cancelled %s after the stall", time.Since(stalled).Round(time.Millisecond))
	_, _, causes, _ := a.snapshot()
	if len(causes) != 1 || !errors.Is(causes[0], ErrLeadershipLost) {
		t.Errorf("a's work ended with causes %v, want [%v]", causes, ErrLeadershipLost)
	}
	eventually(t, 10*8*time.Second, "b takes over", b.isLeading)
	t.Logf("b leads %s after the stall", time.Since(stalled).Round(time.Millisecond))
	shared.check(t)
	if holder, err := direct.LeaderOf(ctx, ns, "tandem-leader"); err != nil || holder != "b" {
		t.Errorf("LeaderOf() = %q, %v; want b", holder, err)
	}

	// The network comes back: a finds b leading and does not lead again.
	healed := time.Now()
	proxy.unstall()
	eventually(t, 30*time.Second, "a sees b lead", func() bool {
		_, _, _, seen := a.snapshot()
		return len(seen) > 0 && seen[len(seen)-1] == "b"
	})
	time.Sleep(8 * time.Second)
	if terms, _, _, _ := a.snapshot(); terms != 1 || !b.isLeading() {
		t.Errorf("after the network healed: a led %d terms, b leading %v; want 1 and true", terms, b.isLeading())
	}
	// Nor does a write the Lease b holds: its release at the end of its term read the Lease
	// through the stalled network, and that read is answered only now, naming b.
	for _, r := range proxy.records() {
		if r.At.After(healed) && !r.Dropped && r.Method != http.MethodGet && strings.HasSuffix(r.Path, "/leases/tandem-leader") {
			t.Errorf("a wrote the Lease after the network healed, while b held it: %s %s at +%s", r.Method, r.Path, r.At.Sub(healed).Round(time.Millisecond))
		}
	}
	shared.check(t)
	a.stop(t)
	b.stop(t)
}

// TestElectAfterWriterLockEnded: a daemon's Cluster whose writer Lock was released refuses
// writes (the fence), but not the election's Lease writes.
func TestElectAfterWriterLockEnded(t *testing.T) {
	ctx, c, env := connect(t)
	admin := adminClient(t, env)
	ns := leaderNamespace(ctx, t, admin)
	freeLease(ctx, t, admin)
	l, err := c.Lock(ctx, LockOptions{Holder: "daemon@test:1", Duration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	var shared leaders
	e := startElector(ctx, t, c, fastLeader(t, ns, "a"), &shared, 0)
	eventually(t, 30*time.Second, "a leads on a fenced Cluster", e.isLeading)
	e.stop(t)
	if holder, err := c.LeaderOf(ctx, ns, "tandem-leader"); err != nil || holder != "" {
		t.Errorf("LeaderOf() after release = %q, %v; want \"\"", holder, err)
	}
}

// TestElectWorkReturnsEarly: work that returns while leading gives the Lease up, and Elect
// campaigns again.
func TestElectWorkReturnsEarly(t *testing.T) {
	ctx, c, env := connect(t)
	ns := leaderNamespace(ctx, t, adminClient(t, env))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	terms, stops := 0, 0
	done := make(chan error, 1)
	go func() {
		done <- c.Elect(ctx, fastLeader(t, ns, "a"), LeaderCallbacks{
			OnStartedLeading: func(context.Context) {
				mu.Lock()
				defer mu.Unlock()
				terms++
			},
			OnStoppedLeading: func() {
				mu.Lock()
				defer mu.Unlock()
				stops++
			},
		})
	}()
	eventually(t, 30*time.Second, "three terms", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return terms >= 3
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Elect() = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if stops != terms {
		t.Errorf("%d terms, %d OnStoppedLeading calls; want one per term", terms, stops)
	}
}

func TestElectMissingNamespace(t *testing.T) {
	ctx, c, _ := connect(t)
	opts := fastLeader(t, "no-such-namespace-for-leader", "a")
	err := c.Elect(ctx, opts, LeaderCallbacks{OnStartedLeading: func(context.Context) { t.Error("led in a namespace that does not exist") }})
	want := `cluster "blue": leader election: lease no-such-namespace-for-leader/tandem-leader: namespace "no-such-namespace-for-leader" does not exist`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Elect() = %v, want an error containing %q", err, want)
	}
	if holder, err := c.LeaderOf(ctx, opts.Namespace, opts.Name); err != nil || holder != "" {
		t.Errorf("LeaderOf(missing namespace) = %q, %v; want \"\", nil", holder, err)
	}
}
