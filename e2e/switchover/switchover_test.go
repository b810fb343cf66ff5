package switchover_test

import (
	"strings"
	"testing"
	"time"
)

// TestSwitchoverBothDirections: blue → green and back, with the invariant
// sampler running through both; every phase is a Helm revision.
func TestSwitchoverBothDirections(t *testing.T) {
	h := newHarness(t)
	for _, dir := range []struct{ from, to string }{{"blue", "green"}, {"green", "blue"}} {
		before := h.helmRevisions(t, dir.to, "shop", "storefront")
		h.switchTo(t, dir.to)
		s := startSampler(h.kube, dir.from, dir.to)
		start := time.Now()
		res := h.reconcile(t)
		s.finish(t)
		if res.Code != 0 {
			t.Fatalf("switchover %s → %s: exit %d\n%s", dir.from, dir.to, res.Code, res.Stderr)
		}
		t.Logf("switchover %s → %s took %s (drain 1 s)", dir.from, dir.to, time.Since(start).Round(100*time.Millisecond))
		if got, want := h.roles(t), map[string]string{"green": "blue=standby green=active", "blue": "blue=active green=standby"}[dir.to]; got != want {
			t.Errorf("roles in effect %q, want %q", got, want)
		}
		// storefront on the target: warm (replicas), open (weight), singletons? no CronJob; three revisions at least 2.
		if after := h.helmRevisions(t, dir.to, "shop", "storefront"); after < before+2 {
			t.Errorf("%s: storefront revisions %d → %d, want one per phase that changed it (warm, open)", dir.to, before, after)
		}
		// Nothing left for a plain reconcile.
		res = h.reconcile(t)
		if res.Code != 0 || strings.Contains(res.Stdout, `"action": "upgrade"`) {
			t.Errorf("the reconcile after the switchover changed something: exit %d\n%s", res.Code, res.Stdout)
		}
	}
}
