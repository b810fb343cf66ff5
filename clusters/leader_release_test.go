package clusters

import (
	"context"
	"errors"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// TestLeaderLeaseReleaseOnlyByHolder replays what client-go's release does at the end of a term
// (read the Lease, then write it released over what was read, trusting its own last observed
// record) for a replica whose read is answered only after another took the Lease over: the
// release must be refused and the Lease stay the new leader's. A replica that holds the Lease
// releases it as before.
func TestLeaderLeaseReleaseOnlyByHolder(t *testing.T) {
	ctx := context.Background()
	holder := func(cs *fake.Clientset) string {
		t.Helper()
		l, err := cs.CoordinationV1().Leases("tandem").Get(ctx, "tandem-leader", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return holderOf(l)
	}
	setup := func(by string) (*fake.Clientset, *resourcelock.LeaseLock) {
		id := by
		cs := fake.NewClientset(&coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: "tandem", Name: "tandem-leader", ResourceVersion: "1"},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &id},
		})
		lock := &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: "tandem", Name: "tandem-leader"},
			Client:     &leaderLeases{getter: cs.CoordinationV1(), timeout: 5 * time.Second, identity: "a"},
			LockConfig: resourcelock.ResourceLockConfig{Identity: "a"},
		}
		return cs, lock
	}
	release := resourcelock.LeaderElectionRecord{LeaseDurationSeconds: 1, RenewTime: metav1.Now(), AcquireTime: metav1.Now()}

	t.Run("another replica holds it", func(t *testing.T) {
		cs, lock := setup("b")
		if _, _, err := lock.Get(ctx); err != nil {
			t.Fatal(err)
		}
		if err := lock.Update(ctx, release); !errors.Is(err, errNotHolder) {
			t.Errorf("release of b's Lease by a: %v, want %v", err, errNotHolder)
		}
		if h := holder(cs); h != "b" {
			t.Errorf("holder after a's release: %q, want b", h)
		}
	})
	t.Run("this replica holds it", func(t *testing.T) {
		cs, lock := setup("a")
		if _, _, err := lock.Get(ctx); err != nil {
			t.Fatal(err)
		}
		if err := lock.Update(ctx, release); err != nil {
			t.Errorf("release of a's own Lease: %v", err)
		}
		if h := holder(cs); h != "" {
			t.Errorf("holder after a's release: %q, want none", h)
		}
	})
}
