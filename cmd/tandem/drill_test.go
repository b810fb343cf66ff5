package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/reconciler"
)

func drillLeg(from, to string) *reconciler.SwitchoverReport {
	sr := &reconciler.SwitchoverReport{From: []string{from}, To: []string{to}, Completed: true}
	for n := 1; n <= reconciler.PhaseCount; n++ {
		sr.Phases = append(sr.Phases, reconciler.PhaseReport{Number: n, Name: reconciler.PhaseName(n), Duration: reconciler.Duration(time.Duration(n) * time.Second)})
	}
	return sr
}

// TestDrillFormats: each phase with its time and cluster, the time until
// the target served, the invariant checks and the verdict, in text and
// markdown; a failure says what failed.
func TestDrillFormats(t *testing.T) {
	r := &reconciler.DrillReport{Commit: "9d81e07aa", From: []string{"blue"}, To: []string{"green"}, There: drillLeg("blue", "green"),
		Back: drillLeg("green", "blue"), ServingAfter: reconciler.Duration(3 * time.Second), Checks: 42, Passed: true, RolesInGit: true,
		Duration: reconciler.Duration(31 * time.Second)}
	text := drillText(r)
	for _, want := range []string{"drill blue → green → blue   manifest 9d81e07", "warm green 1.0s · open green 2.0s · close blue 3.0s · singletons 4.0s · cool blue 5.0s",
		"serving on green after 3.0s", "back:  warm blue 1.0s", "(42 checks)", "drill passed in 31.0s"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	md := drillMarkdown(r)
	for _, want := range []string{"### Drill blue → green → blue: passed", "| there | 3 close | blue | 3.0s |", "| back | 1 warm | blue | 1.0s |", "after **3.0s**"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	r.Passed, r.Back = false, nil
	r.There.Completed, r.There.Blocked = false, "switchover blocked in phase 1: release shop/web not healthy on green"
	r.There.Phases = r.There.Phases[:1]
	r.Return = drillLeg("green", "blue")
	r.Return.Phases = []reconciler.PhaseReport{{Number: 5, Name: "cool", Duration: reconciler.Duration(time.Second)}}
	r.Error = "drill failed on the way there: " + r.There.Blocked
	text = drillText(r)
	for _, want := range []string{"FAILED: switchover blocked in phase 1", "return to the roles in git: cool green 1.0s", "drill FAILED after"} {
		if !strings.Contains(text, want) {
			t.Errorf("failed drill's text lacks %q:\n%s", want, text)
		}
	}
}

func TestDrillNeedsTo(t *testing.T) {
	_, errOut, code := runCLI(t, "drill", "--manifest-dir", "../../examples/manifest")
	if code != exitFailure || !strings.Contains(errOut, "--to") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
}
