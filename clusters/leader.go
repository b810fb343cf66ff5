package clusters

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Leadership among tandem serve's replicas runs on client-go's leaderelection, unlike the
// per-cluster writer Lock (lock.go), because it guards something else: which replica polls git
// and starts runs. Every run still takes each cluster's writer Lock, whose fence keeps a
// former leader's late writes out, so leadership only has to be exclusive in the usual case and
// handed over quickly, which is what leaderelection does. What Elect adds around it:
//   - the Lease requests pass this Cluster's fence (they are marked as lease traffic) and each
//     has its own timeout, so a hung connection cannot stall a campaign;
//   - the leader's work (OnStartedLeading) runs in Elect's goroutine and the Lease is released
//     only after it has returned, so a graceful shutdown hands over to a replica that will not
//     find the previous leader still running;
//   - a lost term is followed by a new campaign, until ctx ends;
//   - the leader's work is cancelled RenewDeadline after the start of its last successful
//     renewal, by its own clock. leaderelection alone gives up only RetryPeriod+RenewDeadline
//     after that renewal, and cancels the work only after trying to release the Lease, which
//     through a dead connection takes another request timeout: later than another replica may
//     take over (LeaseDuration after it saw that renewal). With the deadline here the work
//     is cancelled at least LeaseDuration-RenewDeadline (5s by default) before anyone can take
//     over, and has that long to return;
//   - OnNewLeader is called from one goroutine, in order, and never after Elect returned.
//
// The remaining assumption is the one every lease makes: the two replicas' clocks run at about
// the same rate.

// DefaultLeaderLease is the Lease DefaultLeaderOptions names.
const DefaultLeaderLease = "tandem-leader"

// ErrLeadershipLost is the cause (context.Cause) of the cancellation of OnStartedLeading's
// context when the Lease could not be renewed in time or another replica holds it.
var ErrLeadershipLost = errors.New("leadership lost")

// LeaderOptions configures Elect.
type LeaderOptions struct {
	// Namespace holds the Lease, typically the daemon's own. It must exist: Elect does not
	// create it.
	Namespace string
	// Name is the Lease's name; default DefaultLeaderLease.
	Name string
	// Identity is this replica in the Lease's holderIdentity. It must be unique per replica and
	// per process: a process that finds its own identity in the Lease takes itself for the
	// leader, even if the holder was another process (a predecessor still shutting down).
	// DefaultLeaderOptions sets host_pid_random.
	Identity string
	// LeaseDuration is how long other replicas wait, after they last saw the Lease change,
	// before taking it over. It must be a whole number of seconds (the Lease records
	// seconds), at least 1s. Default 15s.
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader keeps trying to renew before it gives leadership
	// up; shorter than LeaseDuration. Default 2/3 of LeaseDuration (10s).
	RenewDeadline time.Duration
	// RetryPeriod is how often the Lease is renewed, or tried by a replica that does not
	// lead; 1.2 times it must be shorter than RenewDeadline (leaderelection's jitter).
	// Default 2/15 of LeaseDuration (2s).
	RetryPeriod time.Duration
	// Logger receives what the election does, with "cluster", "lease" and "identity"
	// attributes; nil discards. client-go's own leaderelection logs go to it too.
	Logger *slog.Logger
}

// DefaultLeaderOptions returns controller-runtime's timing (15s lease, 10s renew deadline,
// 2s retry), the Lease DefaultLeaderLease, and an identity of the host name, the process id and
// a random token. Set Namespace.
func DefaultLeaderOptions() LeaderOptions {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error
	return LeaderOptions{
		Name:          DefaultLeaderLease,
		Identity:      fmt.Sprintf("%s_%d_%s", host, os.Getpid(), hex.EncodeToString(b)),
		LeaseDuration: 15 * time.Second,
		RenewDeadline: 10 * time.Second,
		RetryPeriod:   2 * time.Second,
	}
}

// withDefaults fills zero fields and checks the timing is one leaderelection can keep.
func (o LeaderOptions) withDefaults() (LeaderOptions, error) {
	if o.Name == "" {
		o.Name = DefaultLeaderLease
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = o.LeaseDuration * 2 / 3
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = o.LeaseDuration * 2 / 15
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.Namespace == "":
		return o, errors.New("namespace is empty")
	case o.Identity == "":
		return o, errors.New("identity is empty: give each replica its own")
	case o.LeaseDuration < time.Second:
		return o, fmt.Errorf("lease duration %s is under 1s", o.LeaseDuration)
	case o.LeaseDuration%time.Second != 0:
		// The Lease records whole seconds: others would wait less than the leader assumes.
		return o, fmt.Errorf("lease duration %s is not a whole number of seconds", o.LeaseDuration)
	case o.RenewDeadline <= 0 || o.RenewDeadline >= o.LeaseDuration:
		return o, fmt.Errorf("renew deadline %s is not between 0 and the lease duration %s", o.RenewDeadline, o.LeaseDuration)
	case o.RetryPeriod <= 0 || time.Duration(leaderelection.JitterFactor*float64(o.RetryPeriod)) >= o.RenewDeadline:
		return o, fmt.Errorf("retry period %s is not between 0 and the renew deadline %s divided by %v", o.RetryPeriod, o.RenewDeadline, leaderelection.JitterFactor)
	}
	return o, nil
}

// requestTimeout bounds each Lease request, so one stalled connection cannot use up the renew
// deadline alone, nor hang a replica's campaign.
func (o LeaderOptions) requestTimeout() time.Duration { return o.RenewDeadline / 2 }

// LeaderCallbacks is what Elect calls. Only OnStartedLeading is required.
type LeaderCallbacks struct {
	// OnStartedLeading does the leader's work. It runs in Elect's goroutine and must return
	// soon after its context is cancelled: when leadership is lost (context.Cause is
	// ErrLeadershipLost) or when Elect's context ends (its cause). Elect releases the Lease only
	// after it has returned. If it returns while still leading, the Lease is released and
	// Elect campaigns again after RetryPeriod.
	OnStartedLeading func(ctx context.Context)
	// OnStoppedLeading, if set, is called after each term, once OnStartedLeading has returned
	// and the Lease was released or lost. Unlike client-go's, it is not called by a replica
	// that never led.
	OnStoppedLeading func()
	// OnNewLeader, if set, is called with the Lease's holder each time the one Elect sees
	// changes, starting with the first it sees; "" means nobody holds it (it was released).
	// It is called from one goroutine, in order, with the last holder seen delivered before
	// Elect returns; it must not block for long (holders seen meanwhile are coalesced).
	OnNewLeader func(identity string)
}

// Elect campaigns for leadership of the Lease opts.Namespace/opts.Name with client-go's
// leaderelection (a coordination.k8s.io/v1 LeaseLock, ReleaseOnCancel) until ctx ends, calling
// cb.OnStartedLeading for each term it wins. It returns nil once ctx has ended, the current
// term's OnStartedLeading has returned and the Lease (if held) has been released. It returns an
// error at once when the options are invalid, the namespace does not exist, or the Lease cannot
// be read or (dry run) created, e.g. for want of RBAC.
func (c *Cluster) Elect(ctx context.Context, opts LeaderOptions, cb LeaderCallbacks) error {
	opts, err := opts.withDefaults()
	if err == nil && cb.OnStartedLeading == nil {
		err = errors.New("OnStartedLeading is nil")
	}
	if err != nil {
		return fmt.Errorf("cluster %q: leader election: %w", c.name, err)
	}
	lease := opts.Namespace + "/" + opts.Name
	log := opts.Logger.With("cluster", c.name, "lease", lease, "identity", opts.Identity)
	if err := c.leaderPreflight(ctx, opts); err != nil {
		return fmt.Errorf("cluster %q: leader election: lease %s: %w", c.name, lease, err)
	}

	watch := &leaderWatch{changed: make(chan struct{}, 1)}
	if cb.OnNewLeader != nil {
		stop, delivered := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(delivered)
			watch.deliver(stop, cb.OnNewLeader)
		}()
		defer func() {
			close(stop)
			<-delivered
		}()
	}
	for {
		led, err := c.leaderTerm(ctx, opts, cb, watch, log)
		if err != nil {
			return fmt.Errorf("cluster %q: leader election: lease %s: %w", c.name, lease, err)
		}
		if led && cb.OnStoppedLeading != nil {
			cb.OnStoppedLeading()
		}
		// A new term starts after a pause, so that work that returns at once does not turn
		// into a loop of acquiring and releasing the Lease.
		t := time.NewTimer(opts.RetryPeriod)
		select {
		case <-ctx.Done():
			t.Stop()
			log.Debug("leader election ended")
			return nil
		case <-t.C:
		}
	}
}

// leaderTerm runs one LeaderElector until it has stopped leading, or until ctx ends if it never
// led, and reports whether it led. The leader's work runs here, not in leaderelection's
// goroutine, so that the Lease is released (by stopping the elector's context) only after the
// work returned.
func (c *Cluster) leaderTerm(ctx context.Context, opts LeaderOptions, cb LeaderCallbacks, watch *leaderWatch, log *slog.Logger) (bool, error) {
	runCtx, stopRun := context.WithCancel(logr.NewContext(context.WithoutCancel(ctx), logr.FromSlogHandler(log.Handler())))
	defer stopRun()
	valid := &leaderValidity{renewDeadline: opts.RenewDeadline}
	leases := &leaderLeases{
		getter:   c.clientset.CoordinationV1(),
		timeout:  opts.requestTimeout(),
		identity: opts.Identity,
		observe:  watch.observe,
		renewed:  valid.renewed,
	}
	won := make(chan context.Context, 1) // leaderelection calls OnStartedLeading at most once
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.Name},
			Client:     leases,
			LockConfig: resourcelock.ResourceLockConfig{Identity: opts.Identity},
		},
		LeaseDuration:   opts.LeaseDuration,
		RenewDeadline:   opts.RenewDeadline,
		RetryPeriod:     opts.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            opts.Namespace + "/" + opts.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) { won <- lctx },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return false, err
	}
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		le.Run(runCtx)
	}()

	var lctx context.Context
	select {
	case <-ctx.Done():
		// Not leading: stop campaigning. Had the elector just won, it releases the Lease.
		stopRun()
		<-ran
		return false, nil
	case <-ran: // it won and lost before this select looked: a term without work
		return false, nil
	case lctx = <-won:
	}
	led := ctx.Err() == nil
	if led {
		log.Info("started leading")
		work, cancel := context.WithCancelCause(ctx)
		lost := func() { cancel(ErrLeadershipLost) }
		stopLost := context.AfterFunc(lctx, lost) // leaderelection gave up
		valid.arm(lost)                           // or the renew deadline passed first
		cb.OnStartedLeading(work)
		valid.disarm()
		stopLost()
		cause := context.Cause(work)
		cancel(context.Canceled)
		if cause == nil {
			cause = errors.New("OnStartedLeading returned")
		}
		log.Info("stopped leading", "reason", cause.Error())
	}
	stopRun() // releases the Lease if it is still ours
	<-ran
	return led, nil
}

// leaderValidity is a leader's own deadline: the start of its last successful write of the
// Lease plus RenewDeadline, on the local monotonic clock. Its timer is armed while the work
// runs; renewals push it back.
type leaderValidity struct {
	renewDeadline time.Duration

	mu     sync.Mutex
	start  time.Time   // of the last successful write that made or kept us the holder
	timer  *time.Timer // non-nil while armed
	expire func()
}

func (v *leaderValidity) renewed(start time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !start.After(v.start) {
		return
	}
	v.start = start
	if v.timer != nil {
		v.timer.Reset(time.Until(start.Add(v.renewDeadline)))
	}
}

// arm calls expire once the deadline passes without a renewal (at once if it has passed).
func (v *leaderValidity) arm(expire func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.timer = time.AfterFunc(time.Until(v.start.Add(v.renewDeadline)), expire)
}

func (v *leaderValidity) disarm() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.timer != nil {
		v.timer.Stop()
		v.timer = nil
	}
}

// leaderPreflight fails early for what leaderelection would only log and retry for ever: a
// namespace that does not exist, and a Lease this identity may not read or create.
func (c *Cluster) leaderPreflight(ctx context.Context, opts LeaderOptions) error {
	leases := (&leaderLeases{getter: c.clientset.CoordinationV1(), timeout: opts.requestTimeout()}).Leases(opts.Namespace)
	_, err := leases.Get(ctx, opts.Name, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("read: %w", err)
	}
	// A Lease that is not there yet may be in a namespace that is not there either, which
	// only a create tells.
	probe := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.Name}}
	_, err = leases.Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case err == nil, apierrors.IsAlreadyExists(err):
		return nil
	case namespaceMissing(err, opts.Namespace):
		return fmt.Errorf("namespace %q does not exist (Elect does not create it)", opts.Namespace)
	default:
		return fmt.Errorf("create (dry run): %w", err)
	}
}

// LeaderOf returns the holder of the leader Lease namespace/name as recorded in it: the
// identity of the replica that leads, or led last if it died and no one has taken over yet.
// It returns "" when the Lease was released or does not exist.
func (c *Cluster) LeaderOf(ctx context.Context, namespace, name string) (string, error) {
	l, err := c.clientset.CoordinationV1().Leases(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cluster %q: leader of lease %s/%s: %w", c.name, namespace, name, err)
	}
	return holderOf(l), nil
}

// leaderLeases is the Lease client the LeaseLock uses: every request is marked as lease traffic
// (fence.go), so that the fence of a Cluster whose writer Lock has ended does not refuse the
// election's writes, and gets its own timeout; it reports the holder it read or wrote, and the
// start of each successful write that names identity as the holder.
//
// It also refuses a release of a Lease this replica does not hold. client-go's release (on the
// end of a term, ReleaseOnCancel) reads the Lease and, if its own last observed record names it
// the holder, writes the Lease released over what it read — without looking at who holds what it
// read. A replica cut off from the API server (its term already over) whose release's read is
// answered only once the network heals would then release the Lease of the replica that took
// over meanwhile, and could take it back while that one still leads (TestElectLeaderCutOff).
type leaderLeases struct {
	getter   coordinationv1client.LeasesGetter
	timeout  time.Duration
	identity string
	observe  func(holder string)   // nil: nobody listens
	renewed  func(start time.Time) // nil: nobody listens

	mu sync.Mutex
	// last is the resourceVersion and holder of the Lease as last read or written; guarded by mu.
	last struct{ version, holder string }
}

// seen records the Lease as read or written.
func (g *leaderLeases) seen(lease *coordinationv1.Lease) {
	if lease == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.last.version, g.last.holder = lease.ResourceVersion, holderOf(lease)
}

// errNotHolder refuses a release of a Lease another replica holds. It is not a conflict, which
// client-go's release would retry at once.
var errNotHolder = errors.New("not releasing the Lease: this replica does not hold it")

// mayRelease reports whether lease, a release (no holder), replaces the version of the Lease
// last read or written, and that one names this replica as the holder.
func (g *leaderLeases) mayRelease(lease *coordinationv1.Lease) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return lease.ResourceVersion != "" && lease.ResourceVersion == g.last.version && g.last.holder == g.identity
}

func (g *leaderLeases) Leases(namespace string) coordinationv1client.LeaseInterface {
	return &leaderLeaseClient{LeaseInterface: g.getter.Leases(namespace), g: g}
}

// leaderLeaseClient overrides the three calls LeaseLock makes.
type leaderLeaseClient struct {
	coordinationv1client.LeaseInterface
	g *leaderLeases
}

func (l *leaderLeaseClient) call(ctx context.Context, write bool, do func(context.Context) (*coordinationv1.Lease, error)) (*coordinationv1.Lease, error) {
	var lease *coordinationv1.Lease
	start := time.Now()
	err := leaseCall(ctx, l.g.timeout, func(ctx context.Context) error {
		var err error
		lease, err = do(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	l.g.seen(lease)
	holder := holderOf(lease)
	if write && holder == l.g.identity && l.g.renewed != nil {
		l.g.renewed(start)
	}
	if l.g.observe != nil {
		l.g.observe(holder)
	}
	return lease, nil
}

func (l *leaderLeaseClient) Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error) {
	return l.call(ctx, false, func(ctx context.Context) (*coordinationv1.Lease, error) {
		return l.LeaseInterface.Get(ctx, name, opts)
	})
}

func (l *leaderLeaseClient) Create(ctx context.Context, lease *coordinationv1.Lease, opts metav1.CreateOptions) (*coordinationv1.Lease, error) {
	if opts.FieldManager == "" {
		opts.FieldManager = fieldManager
	}
	return l.call(ctx, true, func(ctx context.Context) (*coordinationv1.Lease, error) {
		return l.LeaseInterface.Create(ctx, lease, opts)
	})
}

func (l *leaderLeaseClient) Update(ctx context.Context, lease *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	if opts.FieldManager == "" {
		opts.FieldManager = fieldManager
	}
	if holderOf(lease) == "" && !l.g.mayRelease(lease) {
		return nil, fmt.Errorf("lease %s/%s: %w", lease.Namespace, lease.Name, errNotHolder)
	}
	return l.call(ctx, true, func(ctx context.Context) (*coordinationv1.Lease, error) {
		return l.LeaseInterface.Update(ctx, lease, opts)
	})
}

// leaderWatch hands the holders the election sees to OnNewLeader: observe never blocks the
// election, and deliver calls OnNewLeader from one goroutine with the latest holder.
type leaderWatch struct {
	mu      sync.Mutex
	holder  string
	seen    bool
	changed chan struct{} // capacity 1: a pending change
}

func (w *leaderWatch) observe(holder string) {
	w.mu.Lock()
	changed := !w.seen || holder != w.holder
	w.holder, w.seen = holder, true
	w.mu.Unlock()
	if changed {
		select {
		case w.changed <- struct{}{}:
		default: // one is pending already; deliver reads the latest
		}
	}
}

// deliver calls fn for each change until stop is closed, then once more if a change is
// pending, so that the last holder observed before stop is delivered.
func (w *leaderWatch) deliver(stop <-chan struct{}, fn func(string)) {
	var reported string
	first := true
	for {
		stopping := false
		select {
		case <-stop:
			stopping = true
		case <-w.changed:
		}
		w.mu.Lock()
		holder, seen := w.holder, w.seen
		w.mu.Unlock()
		if seen && (first || holder != reported) {
			first, reported = false, holder
			fn(holder)
		}
		if stopping {
			return
		}
	}
}
