package reconciler

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

func switchoverManifest(blue, green manifest.Role) *manifest.Manifest {
	drain := 2
	return &manifest.Manifest{
		ID:       "shop",
		Clusters: []manifest.Cluster{{Name: "blue", Role: blue}, {Name: "green", Role: green}},
		DNS:      manifest.DNS{AnnotationPrefix: manifest.DefaultAnnotationPrefix, ActiveWeight: 100, DrainSeconds: &drain},
		Releases: []manifest.Release{
			{Name: "edge", Namespace: "platform", Standby: manifest.StandbyKeep},
			{Name: "web", Namespace: "shop", Standby: manifest.StandbyScaleToZero},
		},
	}
}

// phaseTable reduces a plan to "phase cluster release knobs" rows.
type phaseRow struct {
	Phase   int
	Cluster string
	Role    manifest.Role
	Release string
	Knobs   render.Knobs
}

func rows(p *SwitchoverPlan) []phaseRow {
	var out []phaseRow
	for _, ph := range p.Phases {
		for _, st := range ph.Steps {
			if len(st.Releases) == 0 {
				out = append(out, phaseRow{ph.Number, st.Cluster, st.Role, "", render.Knobs{}})
			}
			for _, r := range st.Releases {
				out = append(out, phaseRow{ph.Number, st.Cluster, st.Role, r.Name, r.Knobs})
			}
		}
	}
	return out
}

func TestPlanSwitchover(t *testing.T) {
	up, down := manifest.RoleActive, manifest.RoleStandby
	tests := []struct {
		name     string
		m        *manifest.Manifest
		inEffect Roles
		want     []phaseRow
		from, to []string
	}{
		{name: "no role change", m: switchoverManifest(up, down), inEffect: Roles{"blue": up, "green": down}},
		{name: "never reconciled", m: switchoverManifest(down, up), inEffect: Roles{}},
		{
			name: "blue to green", m: switchoverManifest(down, up), inEffect: Roles{"blue": up, "green": down},
			from: []string{"blue"}, to: []string{"green"},
			want: []phaseRow{
				// keep releases are not touched by phases 1 and 5
				{1, "green", down, "web", render.Knobs{SuspendCronJobs: true}},
				{2, "green", up, "edge", render.Knobs{SuspendCronJobs: true, Weight: 100}},
				{2, "green", up, "web", render.Knobs{SuspendCronJobs: true, Weight: 100}},
				{3, "blue", down, "edge", render.Knobs{}},
				{3, "blue", down, "web", render.Knobs{}},
				// the source's CronJobs are suspended before the target's
				// resume, standby: keep releases' too
				{4, "blue", down, "edge", render.Knobs{SuspendCronJobs: true}},
				{4, "blue", down, "web", render.Knobs{SuspendCronJobs: true}},
				{4, "green", up, "edge", render.Knobs{Weight: 100}},
				{4, "green", up, "web", render.Knobs{Weight: 100}},
				{5, "blue", down, "web", render.Knobs{ScaleDown: true, SuspendCronJobs: true}},
			},
		},
		{
			name: "green back to blue", m: switchoverManifest(up, down), inEffect: Roles{"blue": down, "green": up},
			from: []string{"green"}, to: []string{"blue"},
			want: []phaseRow{
				{1, "blue", down, "web", render.Knobs{SuspendCronJobs: true}},
				{2, "blue", up, "edge", render.Knobs{SuspendCronJobs: true, Weight: 100}},
				{2, "blue", up, "web", render.Knobs{SuspendCronJobs: true, Weight: 100}},
				{3, "green", down, "edge", render.Knobs{}},
				{3, "green", down, "web", render.Knobs{}},
				{4, "green", down, "edge", render.Knobs{SuspendCronJobs: true}},
				{4, "green", down, "web", render.Knobs{SuspendCronJobs: true}},
				{4, "blue", up, "edge", render.Knobs{Weight: 100}},
				{4, "blue", up, "web", render.Knobs{Weight: 100}},
				{5, "green", down, "web", render.Knobs{ScaleDown: true, SuspendCronJobs: true}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := PlanSwitchover(tc.m, tc.inEffect)
			if tc.want == nil {
				if p != nil {
					t.Fatalf("want no switchover, got %s", p.Title())
				}
				return
			}
			if diff := cmp.Diff(tc.want, rows(p)); diff != "" {
				t.Errorf("phases (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([][]string{tc.from, tc.to}, [][]string{p.From, p.To}); diff != "" {
				t.Errorf("from, to (-want +got):\n%s", diff)
			}
			if p.DrainSeconds != 2 || len(p.Blocked) != 0 {
				t.Errorf("drain %d, blocked %v", p.DrainSeconds, p.Blocked)
			}
		})
	}
}

// The last phase that touches a cluster leaves it exactly as the plain
// render of its new role, so the reconcile after the switchover changes
// nothing the switchover already did; and phase 0 is the plain old role.
func TestSwitchoverEndsAtPlainRoles(t *testing.T) {
	for _, stz := range []bool{true, false} {
		for _, source := range []bool{true, false} {
			oldRole, newRole := render.RoleStandby, render.RoleActive
			if source {
				oldRole, newRole = newRole, oldRole
			}
			plain := func(r render.Role) render.Knobs {
				return render.Overlay{Role: r, ScaleToZero: stz, ActiveWeight: 100}.Effective()
			}
			k0, r0 := knobsAt(source, stz, 100, 0)
			k5, r5 := knobsAt(source, stz, 100, PhaseCount)
			if k0 != plain(oldRole) || string(r0) != string(oldRole) || k5 != plain(newRole) || string(r5) != string(newRole) {
				t.Errorf("source=%v scale-to-zero=%v: phase 0 %+v %s, phase 5 %+v %s; want plain %s then plain %s",
					source, stz, k0, r0, k5, r5, oldRole, newRole)
			}
		}
	}
}

// At every phase boundary, for a release on both clusters: some weight is
// up, a cluster whose weight is up runs its workloads, and no CronJob runs
// on both. The invariants the e2e sampler checks live, here on the plan.
func TestSwitchoverPhasesKeepInvariants(t *testing.T) {
	for _, stz := range []bool{true, false} {
		for p := 0; p <= PhaseCount; p++ {
			src, _ := knobsAt(true, stz, 100, p)
			dst, _ := knobsAt(false, stz, 100, p)
			if src.Weight == 0 && dst.Weight == 0 {
				t.Errorf("scale-to-zero=%v phase %d: all weights zero", stz, p)
			}
			for _, k := range []render.Knobs{src, dst} {
				if k.Weight > 0 && k.ScaleDown {
					t.Errorf("scale-to-zero=%v phase %d: weight up on a scaled-down cluster %+v", stz, p, k)
				}
			}
			if stz && !src.SuspendCronJobs && !dst.SuspendCronJobs {
				t.Errorf("phase %d: CronJobs running on both clusters", p)
			}
		}
	}
}

func TestPlanSwitchoverBlocksStagedEnablement(t *testing.T) {
	m := switchoverManifest(manifest.RoleStandby, manifest.RoleActive)
	m.Clusters[1].Releases = []string{"edge"} // green runs only edge
	p := PlanSwitchover(m, Roles{"blue": manifest.RoleActive, "green": manifest.RoleStandby})
	if p == nil || len(p.Blocked) != 1 {
		t.Fatalf("want one blocker (shop/web runs on no cluster that becomes active), got %+v", p)
	}
}

func TestObjectChanges(t *testing.T) {
	before := []render.Object{{Kind: "Deployment", Namespace: "shop", Name: "web", Body: []byte("kind: Deployment\nmetadata:\n  name: web\n  annotations: {tandem.dev/active-replicas: \"3\"}\nspec: {replicas: 0}\n")}}
	after := []render.Object{{Kind: "Deployment", Namespace: "shop", Name: "web", Body: []byte("kind: Deployment\nmetadata:\n  name: web\nspec: {replicas: 3}\n")}}
	got, err := objectChanges(before, after)
	if err != nil {
		t.Fatal(err)
	}
	want := []FieldChange{
		{Object: "Deployment shop/web", Field: `metadata.annotations["tandem.dev/active-replicas"]`, From: "3"},
		{Object: "Deployment shop/web", Field: "spec.replicas", From: "0", To: "3"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}
