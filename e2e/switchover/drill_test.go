package switchover_test

import (
	"encoding/json"
	"testing"
	"time"

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
	d := h.startCmd(t, "drill", "--to", to, "--manifest-dir", h.repo.Dir, "-o", "json", "--lock-duration", "6s")
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
