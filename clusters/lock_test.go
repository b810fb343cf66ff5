package clusters

import (
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

func TestClaimable(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		lease *coordinationv1.Lease
		want  bool
	}{
		{"released", lease("", now, 30), true},
		{"own", lease("me", now, 30), true},
		{"held and fresh", lease("other", now.Add(-10*time.Second), 30), false},
		{"held, at expiry", lease("other", now.Add(-30*time.Second), 30), false},
		{"expired", lease("other", now.Add(-31*time.Second), 30), true},
		{"no renew time", lease("other", time.Time{}, 30), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := claimable(tt.lease, "me", now); got != tt.want {
				t.Errorf("claimable() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClaimCountsTransitions(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	l := lease("other", now.Add(-time.Hour), 15)
	claim(l, LockOptions{Holder: "me", Duration: 1500 * time.Millisecond}, now)
	if holderOf(l) != "me" || *l.Spec.LeaseTransitions != 1 || !l.Spec.AcquireTime.Time.Equal(now) || *l.Spec.LeaseDurationSeconds != 2 {
		t.Errorf("after takeover: holder %q transitions %d acquired %v duration %ds; want me, 1, %v, 2s (rounded up)",
			holderOf(l), *l.Spec.LeaseTransitions, l.Spec.AcquireTime, *l.Spec.LeaseDurationSeconds, now)
	}
	later := now.Add(time.Minute)
	claim(l, LockOptions{Holder: "me", Duration: time.Second}, later)
	if *l.Spec.LeaseTransitions != 1 || !l.Spec.AcquireTime.Time.Equal(now) || !l.Spec.RenewTime.Time.Equal(later) {
		t.Error("reclaiming one's own lease counted a transition or moved the acquire time")
	}
}

func TestLockHeldErrorNamesHolder(t *testing.T) {
	e := &LockHeldError{Cluster: "blue", Holder: "ci@runner:42", Since: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	want := `cluster "blue": locked by "ci@runner:42" since 2026-11-23T12:00:00Z`
	if got := e.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestDefaultLockOptions(t *testing.T) {
	o := DefaultLockOptions()
	if o.Holder == "" || o.Duration <= 0 {
		t.Errorf("DefaultLockOptions() = %+v: want a holder and a duration", o)
	}
}
