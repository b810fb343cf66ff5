package reconciler

import (
	"slices"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/manifest"
)

// threeClusters is swManifest with red, a Standby whose role never changes.
func threeClusters(blue, green manifest.Role) *manifest.Manifest {
	m := swManifest()
	m.Clusters[0].Role, m.Clusters[1].Role = blue, green
	m.Clusters = append(m.Clusters, manifest.Cluster{Name: "red", Role: manifest.RoleStandby})
	return m
}

// Finding 5: red, a bystander Standby, is down during the switchover blue
// → green. It is not taken for a source: the switchover completes (blue is
// closed and cooled, green's CronJobs resume), only red's report fails, and
// red's return is a plain reconcile, not a new plan.
func TestSwitchoverDownBystanderIsNoSource(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	fakes["red"] = newFake("red", log)
	if rep := reconcileLost(t, threeClusters(manifest.RoleActive, manifest.RoleStandby), fakes, ""); rep.Switchover != nil || len(rep.Failed()) > 0 {
		t.Fatalf("seeding: %+v %+v", rep.Switchover, rep.Clusters)
	}
	log.ops = nil
	m := threeClusters(manifest.RoleStandby, manifest.RoleActive)
	rep := reconcileLost(t, m, fakes, "red")
	sw := rep.Switchover
	if sw == nil || !sw.Completed || !slices.Equal(sw.From, []string{"blue"}) || !slices.Equal(sw.To, []string{"green"}) {
		t.Fatalf("want blue → green completed with red down, got %+v", sw)
	}
	if !slices.Equal(rep.Failed(), []string{"red"}) {
		t.Errorf("failed %v, want red only", rep.Failed())
	}
	if d := digestOf(fakes["green"], "s/web"); !strings.Contains(d, "SuspendCronJobs:false Weight:100") {
		t.Errorf("green's web %q", d)
	}
	if d := digestOf(fakes["blue"], "s/web"); !strings.Contains(d, "ScaleDown:true SuspendCronJobs:true Weight:0") {
		t.Errorf("blue's web %q", d)
	}
	log.ops = nil
	rep = reconcileLost(t, m, fakes, "")
	if rep.Switchover != nil || len(rep.Failed()) > 0 {
		t.Errorf("red back: switchover %+v, failed %+v", rep.Switchover, rep.Clusters)
	}
	for _, w := range writes(log) {
		if !strings.HasPrefix(w, "red ") {
			t.Errorf("red's return wrote %q", w)
		}
	}
}
