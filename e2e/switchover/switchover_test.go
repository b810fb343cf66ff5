package switchover_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// checkStatus runs `tandem status -o json` and checks the live columns
// against the objects: active serves every hostname at 100 with its
// CronJobs running, standby at 0 with them suspended; roles in git and in
// effect agree, no switchover under way.
func (h *harness) checkStatus(t *testing.T, active, standby string) {
	t.Helper()
	res := e2etest.Run(t, h.bin, time.Minute, h.tandemEnv(), "status", "--manifest-dir", h.repo.Dir, "-o", "json")
	if res.Code != 0 {
		t.Fatalf("tandem status: exit %d\n%s", res.Code, res.Stderr)
	}
	var rows []struct {
		Name string                 `json:"name"`
		Live *reconciler.LiveStatus `json:"live"`
	}
	res.JSON(t, &rows)
	for _, r := range rows {
		l := r.Live
		if l == nil {
			t.Fatalf("%s: no live status:\n%s", r.Name, res.Stdout)
		}
		want := map[string]int{active: 100, standby: 0}[r.Name]
		role := map[string]string{active: "active", standby: "standby"}[r.Name]
		if l.RoleInGit != role || l.RoleInEffect != role || l.Switchover != nil {
			t.Errorf("%s: role in git %q, in effect %q, switchover %+v; want %s, none", r.Name, l.RoleInGit, l.RoleInEffect, l.Switchover, role)
		}
		if len(l.DNSWeights) == 0 {
			t.Errorf("%s: no DNS weights read back", r.Name)
		}
		for host, w := range l.DNSWeights {
			if w != want {
				t.Errorf("%s: %s weight %d, want %d", r.Name, host, w, want)
			}
		}
		suspended := map[string]int{active: 0, standby: l.CronJobs}[r.Name]
		if l.CronJobs == 0 || l.CronJobsSuspended != suspended {
			t.Errorf("%s: %d of %d CronJobs suspended, want %d", r.Name, l.CronJobsSuspended, l.CronJobs, suspended)
		}
	}
	table := e2etest.Run(t, h.bin, time.Minute, h.tandemEnv(), "status", "--manifest-dir", h.repo.Dir)
	t.Logf("tandem status:\n%s", table.Stdout)
}

// TestSwitchoverBothDirections: blue → green and back, with the invariant
// sampler running through both; every phase is a Helm revision.
func TestSwitchoverBothDirections(t *testing.T) {
	h := newHarness(t)
	dirs := []struct{ from, to string }{{"blue", "green"}, {"green", "blue"}}
	if h.active(t) == "green" { // an earlier test of the package left green Active
		dirs[0], dirs[1] = dirs[1], dirs[0]
	}
	for _, dir := range dirs {
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
		h.checkStatus(t, dir.to, dir.from)
		// Nothing left for a plain reconcile.
		res = h.reconcile(t)
		if res.Code != 0 || strings.Contains(res.Stdout, `"action": "upgrade"`) {
			t.Errorf("the reconcile after the switchover changed something: exit %d\n%s", res.Code, res.Stdout)
		}
	}
}
