package clusters

import (
	"regexp"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func lease(holder string, renewed time.Time, seconds int32) *coordinationv1.Lease {
	l := &coordinationv1.Lease{}
	if holder != "" {
		l.Spec.HolderIdentity = &holder
	}
	if !renewed.IsZero() {
		t := metav1.NewMicroTime(renewed)
		l.Spec.RenewTime = &t
	}
	if seconds > 0 {
		l.Spec.LeaseDurationSeconds = &seconds
	}
	return l
}

// withRV returns l at resourceVersion rv, as the API server would after a write.
func withRV(l *coordinationv1.Lease, rv string) *coordinationv1.Lease {
	l = l.DeepCopy()
	l.ResourceVersion = rv
	return l
}

// TestTakeoverJudgedByLocalObservation is item 4's "expiry of someone
// else's lease is judged by when this process observed the record last
// change": the remote renewTime never decides, so neither a skewed clock on
// the holder's side nor on ours can steal a live lock or keep a dead one.
func TestTakeoverJudgedByLocalObservation(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) // local clock readings
	longAgo := t0.Add(-time.Hour)                        // remote clock readings
	future := t0.Add(time.Hour)
	type seen struct {
		lease *coordinationv1.Lease
		at    time.Duration // since t0
	}
	tests := []struct {
		name string
		seen []seen
		now  time.Duration
		want bool
	}{
		{"released lease is free at once", []seen{{withRV(lease("", t0, 30), "1"), 0}}, 0, true},
		{"own identity", []seen{{withRV(lease("me", t0, 30), "1"), 0}}, 0, true},
		{"held, just seen", []seen{{withRV(lease("other", longAgo, 30), "1"), 0}}, 0, false},
		{"held, unchanged just under its duration", []seen{{withRV(lease("other", t0, 30), "1"), 0}}, 30*time.Second - time.Millisecond, false},
		{"held, unchanged for its duration", []seen{{withRV(lease("other", t0, 30), "1"), 0}}, 30 * time.Second, true},
		{"renewTime an hour old but still being renewed (holder clock behind)", []seen{
			{withRV(lease("other", longAgo, 10), "1"), 0},
			{withRV(lease("other", longAgo.Add(time.Second), 10), "2"), 8 * time.Second},
			{withRV(lease("other", longAgo.Add(2*time.Second), 10), "3"), 16 * time.Second},
		}, 25 * time.Second, false},
		{"renewTime an hour ahead, holder dead (holder clock ahead)", []seen{
			{withRV(lease("other", future, 10), "1"), 0},
			{withRV(lease("other", future, 10), "1"), 5 * time.Second},
		}, 10 * time.Second, true},
		{"a rewrite with the same renewTime restarts the clock", []seen{
			{withRV(lease("other", t0, 10), "1"), 0},
			{withRV(lease("other", t0, 10), "2"), 9 * time.Second},
		}, 12 * time.Second, false},
		{"a new holder restarts the clock", []seen{
			{withRV(lease("other", t0, 10), "1"), 0},
			{withRV(lease("third", t0, 10), "1"), 9 * time.Second},
		}, 12 * time.Second, false},
		{"no lease duration: ours is the fallback", []seen{{withRV(lease("other", t0, 0), "1"), 0}}, 20 * time.Second, true},
		{"no lease duration, under ours", []seen{{withRV(lease("other", t0, 0), "1"), 0}}, 19 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o observation
			for _, s := range tt.seen {
				o.observe(s.lease, t0.Add(s.at))
			}
			last := tt.seen[len(tt.seen)-1].lease
			if got := o.claimable(last, "me", t0.Add(tt.now), 20*time.Second); got != tt.want {
				t.Errorf("claimable() = %v, want %v", got, tt.want)
			}
		})
	}
}

// A record that changed since it was observed is never claimable, however
// long ago the observation was: the takeover write is conditional on the
// observed version anyway, and expiry must restart from the change.
func TestUnobservedRecordIsNotClaimable(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	var o observation
	o.observe(withRV(lease("other", t0, 10), "1"), t0)
	if o.claimable(withRV(lease("other", t0, 10), "2"), "me", t0.Add(time.Hour), time.Second) {
		t.Error("claimable() = true for a record never observed")
	}
}

func TestLockOptionsDefaults(t *testing.T) {
	tests := []struct {
		name    string
		in      LockOptions
		want    LockOptions
		wantErr string
	}{
		{"derived from duration", LockOptions{Holder: "h", Duration: 30 * time.Second},
			LockOptions{Holder: "h", Duration: 30 * time.Second, RenewDeadline: 20 * time.Second, RetryPeriod: 5 * time.Second}, ""},
		{"short lease", LockOptions{Holder: "h", Duration: 4 * time.Second},
			LockOptions{Holder: "h", Duration: 4 * time.Second, RenewDeadline: 4 * time.Second * 2 / 3, RetryPeriod: 4 * time.Second / 6}, ""},
		{"explicit kept", LockOptions{Holder: "h", Duration: 10 * time.Second, RenewDeadline: 5 * time.Second, RetryPeriod: time.Second},
			LockOptions{Holder: "h", Duration: 10 * time.Second, RenewDeadline: 5 * time.Second, RetryPeriod: time.Second}, ""},
		{"no holder", LockOptions{Duration: 30 * time.Second}, LockOptions{}, "holder is empty"},
		{"lease under 1s", LockOptions{Holder: "h", Duration: time.Millisecond}, LockOptions{}, "under 1s"},
		{"renew deadline not inside the lease", LockOptions{Holder: "h", Duration: 10 * time.Second, RenewDeadline: 10 * time.Second},
			LockOptions{}, "not shorter than the lease duration"},
		{"retry period not inside the renew deadline", LockOptions{Holder: "h", Duration: 10 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 2 * time.Second},
			LockOptions{}, "retry period"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.withDefaults()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("withDefaults() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("withDefaults() = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestLockIdentityUniquePerLock is item 5's "lock holders are unique per
// process and per cluster": the same Holder on two clusters, or twice on
// one, never gives the same identity.
func TestLockIdentityUniquePerLock(t *testing.T) {
	re := regexp.MustCompile(`^ci@runner:42/blue/[0-9a-f]{8}$`)
	seen := map[string]bool{}
	for range 100 {
		id := lockIdentity("ci@runner:42", "blue")
		if !re.MatchString(id) {
			t.Fatalf("lockIdentity() = %q, want holder/cluster/8 hex", id)
		}
		if seen[id] {
			t.Fatalf("lockIdentity() repeated %q", id)
		}
		seen[id] = true
	}
	if a, b := lockIdentity("h", "blue"), lockIdentity("h", "green"); strings.Split(a, "/")[1] == strings.Split(b, "/")[1] {
		t.Errorf("identities %q and %q do not name their clusters", a, b)
	}
}

func TestClaimCountsTransitions(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	l := lease("other", now.Add(-time.Hour), 15)
	claim(l, "me", 1500*time.Millisecond, now)
	if holderOf(l) != "me" || *l.Spec.LeaseTransitions != 1 || !l.Spec.AcquireTime.Time.Equal(now) || *l.Spec.LeaseDurationSeconds != 2 {
		t.Errorf("after takeover: holder %q transitions %d acquired %v duration %ds; want me, 1, %v, 2s (rounded up)",
			holderOf(l), *l.Spec.LeaseTransitions, l.Spec.AcquireTime, *l.Spec.LeaseDurationSeconds, now)
	}
	later := now.Add(time.Minute)
	claim(l, "me", time.Second, later)
	if *l.Spec.LeaseTransitions != 1 || !l.Spec.AcquireTime.Time.Equal(now) || !l.Spec.RenewTime.Time.Equal(later) {
		t.Error("reclaiming one's own lease counted a transition or moved the acquire time")
	}
}

func TestLockHeldErrorNamesHolder(t *testing.T) {
	e := &LockHeldError{Cluster: "blue", Holder: "ci@runner:42/blue/0a1b2c3d", Since: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	want := `cluster "blue": locked by "ci@runner:42/blue/0a1b2c3d" since 2026-11-23T12:00:00Z`
	if got := e.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestDefaultLockOptions(t *testing.T) {
	o := DefaultLockOptions()
	if o.Holder == "" || o.Duration <= 0 {
		t.Errorf("DefaultLockOptions() = %+v: want a holder and a duration", o)
	}
	if got, err := o.withDefaults(); err != nil || got != o {
		t.Errorf("DefaultLockOptions() = %+v is not complete and valid: %+v, %v", o, got, err)
	}
}
