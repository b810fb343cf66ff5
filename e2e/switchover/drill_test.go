package switchover_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// TestDrill: `tandem drill --to <standby>` switches over and back in one
// command with the sampler running throughout; the report has every
// phase's time both ways and the time until the target served; tandem.yaml
// is untouched and the roles in effect are the roles in git afterwards. A
// reconcile started during the drill waits for the locks and then has
// nothing to do.
func TestDrill(t *testing.T) {
	h := newHarness(t)
	from := h.active(t)
	to := other(from)
	yaml := h.repo.Read(t, "tandem.yaml")
	s := startSampler(h.kube, from, to)
	start := time.Now()
	d := h.startCmd(t, "drill", "--to", to, "--manifest-dir", h.repo.Dir, "-o", "json", "--lock-duration", lockDuration)
	if !d.waitFor("switchover  phase 2 open: started", runTimeout) {
		d.kill()
		s.finish(t)
		t.Fatalf("the drill never reached phase 2:\n%s", d.stderr.String())
	}
	rc := h.startGroup(t) // waits for the drill's locks
	code := d.wait(t, 2*runTimeout)
	wall := time.Since(start)
	rcCode := rc.wait(t, runTimeout)
	s.finish(t)
	if code != 0 {
		t.Fatalf("drill: exit %d\n%s\n%s", code, d.stderr.String(), d.stdout.String())
	}
	var rep reconciler.DrillReport
	if err := json.Unmarshal([]byte(d.stdout.String()), &rep); err != nil {
		t.Fatalf("drill report: %v\n%s", err, d.stdout.String())
	}
	if !rep.Passed || !rep.RolesInGit || rep.There == nil || rep.Back == nil || rep.Return != nil || len(rep.Violations) > 0 || rep.Checks == 0 {
		t.Fatalf("drill report: %+v", rep)
	}
	for _, leg := range []*reconciler.SwitchoverReport{rep.There, rep.Back} {
		if len(leg.Phases) != reconciler.PhaseCount {
			t.Errorf("%v → %v: %d phases", leg.From, leg.To, len(leg.Phases))
		}
		for _, ph := range leg.Phases {
			if ph.Duration <= 0 || ph.Skipped != "" {
				t.Errorf("%v → %v phase %d: duration %v skipped %q", leg.From, leg.To, ph.Number, ph.Duration, ph.Skipped)
			}
			t.Logf("%v → %v phase %d %-10s %.1fs", leg.From, leg.To, ph.Number, ph.Name, time.Duration(ph.Duration).Seconds())
		}
	}
	if rep.ServingAfter <= 0 {
		t.Error("no time until the target served")
	}
	t.Logf("drill %s → %s → %s: %.1fs (wall %s), serving on %s after %.1fs, %d invariant checks", from, to, from,
		time.Duration(rep.Duration).Seconds(), wall.Round(100*time.Millisecond), to, time.Duration(rep.ServingAfter).Seconds(), rep.Checks)
	if got := h.repo.Read(t, "tandem.yaml"); got != yaml {
		t.Error("the drill edited tandem.yaml")
	}
	if got, want := h.roles(t), map[string]string{"blue": "blue=active green=standby", "green": "blue=standby green=active"}[from]; got != want {
		t.Errorf("roles in effect after the drill %q, want %q", got, want)
	}
	// The reconcile started mid-drill waited for the locks and found nothing to do.
	if rcCode != 0 {
		t.Fatalf("reconcile during the drill: exit %d\n%s", rcCode, rc.stderr.String())
	}
	var rrep reconciler.Report
	if err := json.Unmarshal([]byte(rc.stdout.String()), &rrep); err != nil {
		t.Fatal(err)
	}
	end := rep.Started.Add(time.Duration(rep.Duration))
	for _, c := range rrep.Clusters {
		if c.LockedAt == nil || c.LockedAt.Before(end.Add(-time.Second)) {
			t.Errorf("%s: the reconcile locked it at %v, before the drill ended at %v", c.Name, c.LockedAt, end)
		}
		if c.Counts.Upgraded+c.Counts.Installed > 0 {
			t.Errorf("%s: the reconcile after the drill changed something: %+v", c.Name, c.Counts)
		}
	}
	if rrep.Switchover != nil {
		t.Errorf("the reconcile after the drill ran a switchover: %+v", rrep.Switchover)
	}
}

// TestDrillBlockedReturns: the target's nodes take no new pods, so the
// drill is blocked in phase 1 on the way there; it puts the target back to
// its Standby render, the source serving untouched throughout, and exits 1
// with a report that says so.
func TestDrillBlockedReturns(t *testing.T) {
	h := newHarness(t)
	from := h.active(t)
	to := other(from)
	h.repo.Replace(t, "tandem.yaml", "chart: ./charts/cache\n", "chart: ./charts/cache\n    timeout: 15s\n")
	h.repo.Commit(t, "short timeout for the blocked drill")
	if res := h.reconcile(t); res.Code != 0 {
		t.Fatalf("exit %d\n%s", res.Code, res.Stderr)
	}
	taint(t, h, to, true)
	t.Cleanup(func() { taint(t, h, to, false) })
	before := map[string]int{}
	for _, r := range []string{"cache", "storefront", "orders-worker"} {
		before[r] = h.helmRevisions(t, from, "shop", r)
	}
	s := startSampler(h.kube, from, to)
	res := e2etest.Run(t, h.bin, 2*runTimeout, h.tandemEnv(), "drill", "--to", to, "--manifest-dir", h.repo.Dir, "--lock-duration", lockDuration)
	s.finish(t)
	t.Logf("tandem drill:\n%s", res.Stdout)
	if res.Code != 1 || !strings.Contains(res.Stdout, "drill FAILED") || !strings.Contains(res.Stdout, "return to the roles in git: cool "+to) || !strings.Contains(res.Stdout, "FAILED: phase 1 (warm): release shop/cache not healthy on "+to) ||
		!strings.Contains(res.Stderr, "switchover blocked in phase 1: release shop/cache not healthy on "+to) {
		t.Errorf("want exit 1, a failed drill returned to the roles in git; got %d", res.Code)
	}
	for r, n := range before {
		if got := h.helmRevisions(t, from, "shop", r); got != n {
			t.Errorf("%s's %s touched: %d revisions, was %d", from, r, got, n)
		}
	}
	if got, want := h.roles(t), map[string]string{"blue": "blue=active green=standby", "green": "blue=standby green=active"}[from]; got != want {
		t.Errorf("roles in effect after the drill %q, want %q", got, want)
	}
	for host, w := range weights(t, h, to) {
		if w != 0 {
			t.Errorf("%s: %s weight %d after the failed drill", to, host, w)
		}
	}
}
