package clusters

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/rest"
)

func TestDefaultLeaderOptions(t *testing.T) {
	a, b := DefaultLeaderOptions(), DefaultLeaderOptions()
	if a.Identity == "" || a.Identity == b.Identity {
		t.Errorf("identities %q and %q: want two different, non-empty ones", a.Identity, b.Identity)
	}
	a.Namespace = "tandem"
	got, err := a.withDefaults()
	if err != nil {
		t.Fatalf("DefaultLeaderOptions() with a namespace: %v", err)
	}
	want := [4]any{DefaultLeaderLease, 15 * time.Second, 10 * time.Second, 2 * time.Second}
	if diff := cmp.Diff(want, [4]any{got.Name, got.LeaseDuration, got.RenewDeadline, got.RetryPeriod}); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestLeaderOptionsValidation(t *testing.T) {
	valid := LeaderOptions{Namespace: "tandem", Identity: "a", LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 300 * time.Millisecond}
	tests := []struct {
		name    string
		change  func(o *LeaderOptions)
		wantErr string // "" means valid
		check   func(t *testing.T, o LeaderOptions)
	}{
		{name: "valid", change: func(o *LeaderOptions) {}},
		{
			name:   "zero timing takes controller-runtime's",
			change: func(o *LeaderOptions) { o.LeaseDuration, o.RenewDeadline, o.RetryPeriod, o.Name = 0, 0, 0, "" },
			check: func(t *testing.T, o LeaderOptions) {
				if o.LeaseDuration != 15*time.Second || o.RenewDeadline != 10*time.Second || o.RetryPeriod != 2*time.Second || o.Name != DefaultLeaderLease {
					t.Errorf("got %s/%s/%s lease %q", o.LeaseDuration, o.RenewDeadline, o.RetryPeriod, o.Name)
				}
			},
		},
		{
			name:   "zero deadline and retry scale with the lease",
			change: func(o *LeaderOptions) { o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 30*time.Second, 0, 0 },
			check: func(t *testing.T, o LeaderOptions) {
				if o.RenewDeadline != 20*time.Second || o.RetryPeriod != 4*time.Second {
					t.Errorf("got %s/%s", o.RenewDeadline, o.RetryPeriod)
				}
			},
		},
		{name: "no namespace", change: func(o *LeaderOptions) { o.Namespace = "" }, wantErr: "namespace is empty"},
		{name: "no identity", change: func(o *LeaderOptions) { o.Identity = "" }, wantErr: "identity is empty"},
		{name: "lease under a second", change: func(o *LeaderOptions) { o.LeaseDuration = 900 * time.Millisecond }, wantErr: "lease duration 900ms is under 1s"},
		{name: "negative lease", change: func(o *LeaderOptions) { o.LeaseDuration = -time.Second }, wantErr: "lease duration -1s is under 1s"},
		{name: "fractional lease", change: func(o *LeaderOptions) { o.LeaseDuration = 2500 * time.Millisecond }, wantErr: "lease duration 2.5s is not a whole number of seconds"},
		{name: "deadline not under the lease", change: func(o *LeaderOptions) { o.RenewDeadline = 2 * time.Second }, wantErr: "renew deadline 2s is not between 0 and the lease duration 2s"},
		{name: "negative deadline", change: func(o *LeaderOptions) { o.RenewDeadline = -time.Second }, wantErr: "renew deadline -1s is not between 0"},
		{name: "retry too close to the deadline", change: func(o *LeaderOptions) { o.RetryPeriod = 1250 * time.Millisecond }, wantErr: "retry period 1.25s is not between 0 and the renew deadline 1.5s divided by 1.2"},
		{name: "negative retry", change: func(o *LeaderOptions) { o.RetryPeriod = -time.Second }, wantErr: "retry period -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid
			tt.change(&o)
			got, err := o.withDefaults()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("withDefaults() = %v, want valid", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("withDefaults() = %v, want an error containing %q", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

// TestElectRejectsBadOptions needs no API server: Elect checks before any request.
func TestElectRejectsBadOptions(t *testing.T) {
	c, err := newCluster("green", &rest.Config{Host: "http://127.0.0.1:1"}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	work := func(ctx context.Context) { <-ctx.Done() }
	tests := []struct {
		name    string
		opts    LeaderOptions
		cb      LeaderCallbacks
		wantErr string
	}{
		{name: "no namespace", opts: DefaultLeaderOptions(), cb: LeaderCallbacks{OnStartedLeading: work}, wantErr: `cluster "green": leader election: namespace is empty`},
		{name: "no work", opts: LeaderOptions{Namespace: "tandem", Identity: "a"}, wantErr: `cluster "green": leader election: OnStartedLeading is nil`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Elect(context.Background(), tt.opts, tt.cb)
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Elect() = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if n := c.Requests(); n != 0 {
		t.Errorf("Elect with bad options sent %d requests", n)
	}
}

func TestLeaderWatch(t *testing.T) {
	w := &leaderWatch{changed: make(chan struct{}, 1)}
	var mu sync.Mutex
	var got []string
	gate := make(chan struct{})
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		w.deliver(stop, func(id string) {
			<-gate // the first call blocks until the test lets it go
			mu.Lock()
			got = append(got, id)
			mu.Unlock()
		})
	}()
	w.observe("a")
	// While "a" is being delivered, the holder changes several times: only the latest is
	// delivered next, and an unchanged holder is not delivered again.
	for _, id := range []string{"a", "b", "", "c", "c"} {
		w.observe(id)
	}
	close(gate)
	w.observe("c")
	w.observe("d")
	close(stop)
	<-done
	w.observe("e") // after deliver returned: nobody is called
	mu.Lock()
	defer mu.Unlock()
	// Which holders in between were seen depends on scheduling; what must hold: the last
	// holder observed before stop is delivered last, none twice in a row, and the changes made
	// while a call blocked are coalesced (at most a, one of b/""/c, c, d).
	if len(got) == 0 || got[len(got)-1] != "d" {
		t.Fatalf("delivered %q, want the last holder d delivered last", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Errorf("delivered %q: a holder repeated", got)
		}
	}
	if len(got) > 4 {
		t.Errorf("delivered %q: changes made during a call were not coalesced", got)
	}
}

func TestLeaderWatchFirstHolderEmpty(t *testing.T) {
	w := &leaderWatch{changed: make(chan struct{}, 1)}
	w.observe("") // a released Lease is the first thing seen: "nobody leads" is news
	stop := make(chan struct{})
	close(stop)
	var got []string
	w.deliver(stop, func(id string) { got = append(got, id) })
	if diff := cmp.Diff([]string{""}, got); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
	// Nothing seen: nothing delivered.
	w = &leaderWatch{changed: make(chan struct{}, 1)}
	got = nil
	w.deliver(stop, func(id string) { got = append(got, id) })
	if len(got) != 0 {
		t.Errorf("delivered %q with nothing observed", got)
	}
}

func TestLeaderValidity(t *testing.T) {
	expired := func(v *leaderValidity) <-chan struct{} {
		ch := make(chan struct{})
		var once sync.Once
		v.arm(func() { once.Do(func() { close(ch) }) })
		return ch
	}

	// A deadline that passed before the work started ends it at once.
	v := &leaderValidity{renewDeadline: time.Hour}
	v.renewed(time.Now().Add(-2 * time.Hour))
	select {
	case <-expired(v):
	case <-time.After(30 * time.Second):
		t.Fatal("a passed deadline did not expire")
	}
	v.disarm()

	// Renewals push the deadline back; an older renewal does not pull it in.
	v = &leaderValidity{renewDeadline: 2 * time.Second}
	v.renewed(time.Now())
	ch := expired(v)
	stopRenewing := time.After(3 * time.Second)
renewing:
	for {
		select {
		case <-ch:
			t.Fatal("expired while renewals kept coming (every 100ms, deadline 2s)")
		case <-stopRenewing:
			break renewing
		case <-time.After(100 * time.Millisecond):
			v.renewed(time.Now())
			v.renewed(time.Now().Add(-time.Hour))
		}
	}
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatal("did not expire once renewals stopped")
	}
	v.disarm()

	// Disarmed, a renewal does not arm it again.
	v = &leaderValidity{renewDeadline: 500 * time.Millisecond}
	v.renewed(time.Now())
	ch = expired(v)
	v.disarm()
	v.renewed(time.Now())
	select {
	case <-ch:
		t.Error("a disarmed validity fired")
	case <-time.After(1500 * time.Millisecond):
	}
}
