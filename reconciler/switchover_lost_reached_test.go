package reconciler

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/clusters"
)

// unreadableRecord is a reachable cluster (its lock is taken) whose state
// record cannot be read: corrupt, or a 500 from its API server.
type unreadableRecord struct{ liveFake }

func (unreadableRecord) ReadState(context.Context, string) (*clusters.State, error) {
	return nil, errors.New("decode state record: invalid character 'x'")
}

// --source-lost is for a source tandem cannot reach. A source whose API
// server answers and whose lock tandem holds, but whose state record it
// cannot read, may be serving and running its CronJobs: declaring it lost
// would resume the target's CronJobs beside them.
func TestSourceLostRefusedWhenSourceReachedButRecordUnreadable(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	reconcileLost(t, swManifest(), fakes, "blue") // the disaster path: green serves, held at phase 2
	log.ops = nil
	wrap := func(f *fakeTarget) Target {
		if f == fakes["blue"] {
			return unreadableRecord{liveFake{f}}
		}
		return liveFake{f}
	}
	rep := reconcileWrapped(t, swManifest(), fakes, wrap, "", "blue")
	if rep.Switchover == nil || !strings.Contains(rep.Switchover.Error, "--source-lost blue: tandem reaches blue") {
		t.Errorf("switchover %+v, want --source-lost refused: tandem reaches blue", rep.Switchover)
	}
	if got := writes(log); len(got) > 0 {
		t.Errorf("writes %v, want none", got)
	}
	if d := digestOf(fakes["green"], "s/web"); !strings.Contains(d, "SuspendCronJobs:true") {
		t.Errorf("green's CronJobs resumed beside a reachable blue: %q", d)
	}
}

// A source declared lost comes back while a target's workload is not
// available: phase 3 is refused (closing the source would leave the
// release served nowhere), but the target's CronJobs already run, so the
// source's are suspended now, its weight kept — the window with CronJobs
// on both ends once tandem reaches the source.
func TestLostSourceBackTargetUnavailableSuspendsItsCronJobs(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	reconcileLost(t, swManifest(), fakes, "blue")
	reconcileLost(t, swManifest(), fakes, "blue", "blue")
	if d := digestOf(fakes["green"], "s/web"); !strings.Contains(d, "SuspendCronJobs:false") {
		t.Fatalf("green's web %q, want its CronJobs resumed by the declaration", d)
	}
	fakes["green"].unhealthy = map[string]bool{"live:web": true}
	rep := reconcileLost(t, swManifest(), fakes, "")
	if sw := rep.Switchover; sw == nil || !strings.Contains(sw.Blocked, "stopped before phase 3") || !strings.Contains(sw.Blocked, "CronJobs suspended") {
		t.Errorf("switchover %+v, want stopped before phase 3 with blue's CronJobs suspended", rep.Switchover)
	}
	for _, key := range []string{"s/web", "p/edge"} {
		if d := digestOf(fakes["blue"], key); !strings.Contains(d, "SuspendCronJobs:true") || !strings.Contains(d, "Weight:100") || !strings.Contains(d, "ScaleDown:false") {
			t.Errorf("blue is back, declared lost, green runs the CronJobs, yet blue's %s is %q", key, d)
		}
	}
	// green healthy again: the switchover completes.
	fakes["green"].unhealthy = nil
	if rep := reconcileLost(t, swManifest(), fakes, ""); rep.Switchover == nil || !rep.Switchover.Completed {
		t.Errorf("green healthy again: %+v", rep.Switchover)
	}
}
