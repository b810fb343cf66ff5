package switchover_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/reconciler"
)

// TestSwitchoverSourceLost: with the source's API server stopped, a later
// run applies to the target (held: serving, CronJobs suspended) and exits
// 1 for the source; `reconcile --source-lost` records the declaration in
// the target's record and resumes the target's CronJobs; with the source
// back, the next run closes it with its CronJobs suspended and completes.
// (No invariant sampler on the return: a source declared lost runs its
// CronJobs from the moment it is back until tandem reaches it — the risk
// the declaration accepts.)
func TestSwitchoverSourceLost(t *testing.T) {
	h := newHarness(t)
	from := h.active(t)
	to := other(from)
	h.switchTo(t, to)
	if err := h.env.StopAPIServer(from); err != nil {
		t.Fatal(err)
	}
	restart := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := h.env.StartAPIServer(ctx, from); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(restart)
	cronsOn := func(cluster string) int {
		t.Helper()
		s := &sampler{kube: h.kube}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		lc, err := s.read(ctx, cluster)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, on := range lc.cronOn {
			if on {
				n++
			}
		}
		return n
	}
	h.reconcile(t) // the disaster path: phases 1 and 2
	res := h.reconcile(t)
	var rep reconciler.Report
	res.JSON(t, &rep)
	if res.Code != 1 || rep.Switchover == nil || rep.Switchover.ResumedAt != reconciler.PhaseClose || len(rep.Failed()) != 1 || rep.Failed()[0] != from {
		t.Fatalf("a later run: exit %d, switchover %+v, failed %v\n%s", res.Code, rep.Switchover, rep.Failed(), res.Stderr)
	}
	if n := cronsOn(to); n != 0 {
		t.Errorf("%s: %d CronJobs unsuspended before any declaration", to, n)
	}

	res = h.reconcile(t, "--source-lost", from)
	if res.Code != 1 || !strings.Contains(res.Stderr, "serves and runs the CronJobs ("+from+" declared lost") {
		t.Errorf("--source-lost: exit %d\n%s", res.Code, res.Stderr)
	}
	if st := h.state(t, to); st == nil || st.Switchover == nil || len(st.Switchover.SourceLost) != 1 || st.Switchover.SourceLost[0].Cluster != from {
		t.Errorf("%s's record does not hold the declaration: %+v", to, st)
	}
	if n := cronsOn(to); n == 0 {
		t.Errorf("%s: CronJobs still suspended after --source-lost", to)
	}

	restart()
	res = h.reconcile(t)
	if res.Code != 0 {
		t.Fatalf("source back: exit %d\n%s", res.Code, res.Stderr)
	}
	if n := cronsOn(from); n != 0 {
		t.Errorf("%s: %d CronJobs unsuspended after its return", from, n)
	}
	if got, want := h.roles(t), map[string]string{"green": "blue=standby green=active", "blue": "blue=active green=standby"}[to]; got != want {
		t.Errorf("roles in effect %q, want %q", got, want)
	}
}
