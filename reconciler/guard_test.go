package reconciler

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// The policy in clusters keys on the markers the overlay in render writes;
// the two packages may not import each other, so their names are checked here.
func TestGuardMarkersAreTheOverlays(t *testing.T) {
	if clusters.GuardReplicasAnnotation != render.AnnotationActiveCount {
		t.Errorf("guard keys on %q, the overlay writes %q", clusters.GuardReplicasAnnotation, render.AnnotationActiveCount)
	}
	if clusters.GuardHeldAnnotation != render.AnnotationHeld {
		t.Errorf("guard keys on %q, the overlay writes %q", clusters.GuardHeldAnnotation, render.AnnotationHeld)
	}
	if clusters.GuardKEDAPaused != render.AnnotationKEDAPaused {
		t.Errorf("guard keys on %q, the overlay writes %q", clusters.GuardKEDAPaused, render.AnnotationKEDAPaused)
	}
}

const guardChart = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "0 2 * * *"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
`

// guardDesired renders guardChart's objects through the overlay with the
// given knobs, as a release of namespace ns.
func guardDesired(t *testing.T, ns, name string, role render.Role, scaleToZero bool) Desired {
	t.Helper()
	o := render.Overlay{Release: name, Cluster: "green", Role: role, ScaleToZero: scaleToZero, ActiveWeight: 100}
	out, err := o.Run(bytes.NewBufferString(guardChart))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := render.ParseObjects(out.String(), ns)
	if err != nil {
		t.Fatal(err)
	}
	return Desired{Spec: manifest.Release{Name: name, Namespace: ns}, Result: &render.Result{Release: name, Namespace: ns, Objects: objs}}
}

func TestDesiredGuard(t *testing.T) {
	shop := guardDesired(t, "shop", "web", render.RoleStandby, true)
	kept := guardDesired(t, "edge", "ingress", render.RoleStandby, false) // standby: keep
	both := map[string]string{"shop.deployments.web": "shop/web", "shop.statefulsets.db": "shop/web"}
	tests := []struct {
		name    string
		mode    GuardMode
		role    manifest.Role
		desired []Desired
		current *clusters.Guard
		scope   map[ReleaseKey]bool
		want    *clusters.Guard
	}{
		{name: "standby: the workloads held at zero", mode: GuardEnforce, role: manifest.RoleStandby, desired: []Desired{shop, kept},
			want: &clusters.Guard{Cluster: "green", Scaled: both, PolicyVersion: clusters.GuardPolicyVersion()}},
		{name: "warn", mode: GuardWarn, role: manifest.RoleStandby, desired: []Desired{shop},
			want: &clusters.Guard{Warn: true, Cluster: "green", Scaled: both, PolicyVersion: clusters.GuardPolicyVersion()}},
		{name: "active: none", mode: GuardEnforce, role: manifest.RoleActive, desired: []Desired{guardDesired(t, "shop", "web", render.RoleActive, true)}},
		{name: "off: none", mode: GuardOff, role: manifest.RoleStandby, desired: []Desired{shop}},
		{name: "a full run drops entries of releases gone", mode: GuardEnforce, role: manifest.RoleStandby, desired: []Desired{shop},
			current: &clusters.Guard{Scaled: map[string]string{"old.deployments.x": "old/x"}},
			want:    &clusters.Guard{Cluster: "green", Scaled: both, PolicyVersion: clusters.GuardPolicyVersion()}},
		{name: "a scoped run keeps other releases' entries", mode: GuardEnforce, role: manifest.RoleStandby,
			desired: []Desired{guardDesired(t, "shop", "web", render.RoleStandby, false)},
			current: &clusters.Guard{Scaled: map[string]string{"old.deployments.x": "old/x", "shop.deployments.web": "shop/web"}},
			scope:   map[ReleaseKey]bool{{"shop", "web"}: true},
			want:    &clusters.Guard{Cluster: "green", Scaled: map[string]string{"old.deployments.x": "old/x"}, PolicyVersion: clusters.GuardPolicyVersion()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := desiredGuard(tt.mode, "green", tt.role, tt.desired, tt.current, tt.scope)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("guard (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGuardAction(t *testing.T) {
	g := &clusters.Guard{Cluster: "green", Scaled: map[string]string{"a.deployments.b": "a/b"}, PolicyVersion: clusters.GuardPolicyVersion()}
	older := &clusters.Guard{Cluster: "green", Scaled: map[string]string{"a.deployments.b": "a/b"}, PolicyVersion: ""}
	warn := &clusters.Guard{Warn: true, Cluster: "green", Scaled: map[string]string{"a.deployments.b": "a/b"}, PolicyVersion: clusters.GuardPolicyVersion()}
	for _, tt := range []struct {
		current, want *clusters.Guard
		action        string
	}{
		{nil, nil, ""},
		{nil, g, GuardInstall},
		{g, nil, GuardRemove},
		{g, g, GuardUnchanged},
		{older, g, GuardUpdate},
		{warn, g, GuardUpdate},
	} {
		if got := guardAction(tt.current, tt.want); got != tt.action {
			t.Errorf("guardAction(%+v, %+v) = %q, want %q", tt.current, tt.want, got, tt.action)
		}
	}
}

// A pull request's plan shows the guard moving with the Standby role.
func TestGuardDiffFollowsTheRole(t *testing.T) {
	man := func(active string) *manifest.Manifest {
		m := &manifest.Manifest{}
		for _, n := range []string{"blue", "green"} {
			role := manifest.RoleStandby
			if n == active {
				role = manifest.RoleActive
			}
			m.Clusters = append(m.Clusters, manifest.Cluster{Name: n, Role: role})
		}
		return m
	}
	res := func(role render.Role) map[string]*render.Result {
		return map[string]*render.Result{"shop/web": guardDesired(t, "shop", "web", role, true).Result}
	}
	from, to := man("blue"), man("green")
	green := guardDiff(from, to, "green", res(render.RoleStandby), res(render.RoleActive))
	if green == nil || green.Change != ChangeRemoved || !slices.Equal(green.Removed, []string{"shop.deployments.web", "shop.statefulsets.db"}) {
		t.Errorf("green (Standby → Active): %+v, want removed with both workloads", green)
	}
	blue := guardDiff(from, to, "blue", res(render.RoleActive), res(render.RoleStandby))
	if blue == nil || blue.Change != ChangeAdded || len(blue.Added) != 2 {
		t.Errorf("blue (Active → Standby): %+v, want added with both workloads", blue)
	}
	if same := guardDiff(from, from, "blue", res(render.RoleActive), res(render.RoleActive)); same != nil {
		t.Errorf("blue stays Active: %+v, want no guard", same)
	}
	if same := guardDiff(from, from, "green", res(render.RoleStandby), res(render.RoleStandby)); same == nil || same.Change != ChangeUnchanged {
		t.Errorf("green stays Standby: %+v, want unchanged", same)
	}
}

// render refuses chart objects under the names and in the namespace the
// clusters package gives tandem's own objects: the two must agree.
func TestRenderReservesClustersNames(t *testing.T) {
	if render.ReservedNamespace != clusters.SystemNamespace {
		t.Errorf("render.ReservedNamespace %q, clusters.SystemNamespace %q", render.ReservedNamespace, clusters.SystemNamespace)
	}
	if !strings.HasPrefix(clusters.GuardNameFor("prod"), render.ReservedNamePrefix) || clusters.GuardName != render.ReservedNamePrefix {
		t.Errorf("render.ReservedNamePrefix %q does not cover the guard's names (%q)", render.ReservedNamePrefix, clusters.GuardNameFor("prod"))
	}
}

// tandem_standby_workloads_scaled_up counts a Standby's workloads of a
// scale-to-zero release with replicas above zero whether or not they still
// carry the marker (review of issue 12, finding 4: every way past the guard
// drops the marker, so counting marked objects only never fired); a
// standby: keep release's and an Active's are not counted, and neither is a
// Standby in a switchover (the target warmed), except a marked one.
func TestScaledUpOnStandby(t *testing.T) {
	m := &manifest.Manifest{
		Clusters: []manifest.Cluster{{Name: "green", Role: manifest.RoleStandby}},
		Releases: []manifest.Release{{Name: "web", Namespace: "shop"}, {Name: "ingress", Namespace: "edge", Standby: manifest.StandbyKeep}},
	}
	s := &clusters.Serving{Workloads: []clusters.WorkloadState{
		{Object: "Deployment shop/web", Release: "shop/web", Replicas: 3},               // marker dropped, scaled up
		{Object: "StatefulSet shop/db", Release: "shop/web", Replicas: 0, Held: true},   // held
		{Object: "Deployment edge/ingress", Release: "edge/ingress", Replicas: 2},       // standby: keep
		{Object: "Deployment shop/marked", Release: "other/x", Replicas: 1, Held: true}, // marked, scaled up
		{Object: "Deployment shop/foreign", Release: "other/y", Replicas: 1},            // not a release of this manifest
	}}
	if got := scaledUpOnStandby(m, "green", true, s); got != 2 {
		t.Errorf("Standby: %d scaled up, want 2 (shop/web without its marker, shop/marked)", got)
	}
	if got := scaledUpOnStandby(m, "green", false, s); got != 1 {
		t.Errorf("Active or in a switchover: %d scaled up, want 1 (the marked one)", got)
	}
}

// fakeGuardTarget is a Target (unused methods nil) that holds a guard.
type fakeGuardTarget struct {
	Target
	user      string
	whoAmI    int
	current   *clusters.Guard
	written   *clusters.Guard
	writeRuns int
}

func (f *fakeGuardTarget) Username(context.Context) (string, error) {
	f.whoAmI++
	return f.user, nil
}

func (f *fakeGuardTarget) ReadGuard(context.Context, string) (*clusters.Guard, error) {
	return f.current, nil
}

func (f *fakeGuardTarget) ApplyGuard(_ context.Context, _ string, g clusters.Guard) error {
	f.written, f.writeRuns = &g, f.writeRuns+1
	return nil
}

func (f *fakeGuardTarget) RemoveGuard(context.Context, string) (bool, error) {
	f.written, f.writeRuns = nil, f.writeRuns+1
	return true, nil
}

// A run writes the guard naming the user it writes as, so that its own
// writes that drop a marker pass; a guard another user wrote is rewritten
// first. A dry run asks the cluster no identity and plans no writer change.
func TestReconcileGuardNamesTheWriter(t *testing.T) {
	shop := guardDesired(t, "shop", "web", render.RoleStandby, true)
	cluster := manifest.Cluster{Name: "green", Role: manifest.RoleStandby}
	want, _ := desiredGuard(GuardEnforce, "green", manifest.RoleStandby, []Desired{shop}, nil, nil)
	other := *want
	other.Writer = "system:serviceaccount:ci:tandem-runner"

	ft := &fakeGuardTarget{user: "system:serviceaccount:tandem-system:tandem", current: &other}
	r := &run{m: &manifest.Manifest{}, opts: Options{StandbyGuard: GuardEnforce}}
	rep := r.reconcileGuard(context.Background(), &clusterRun{t: ft, c: cluster}, []Desired{shop})
	if rep == nil || rep.Action != GuardUpdate || rep.Outcome != OutcomeOK || ft.written == nil || ft.written.Writer != ft.user {
		t.Fatalf("guard written by another user: report %+v, written %+v; want an update naming %s", rep, ft.written, ft.user)
	}

	ft = &fakeGuardTarget{user: "system:serviceaccount:tandem-system:tandem", current: &other}
	r.opts.DryRun = true
	rep = r.reconcileGuard(context.Background(), &clusterRun{t: ft, c: cluster}, []Desired{shop})
	if ft.whoAmI != 0 || ft.writeRuns != 0 || rep == nil || rep.Action != GuardUnchanged {
		t.Errorf("dry run: %d identity reads, %d writes, report %+v; want none, none, unchanged", ft.whoAmI, ft.writeRuns, rep)
	}
}

// Before a switchover step writes anything, the guard goes from the target
// (it becomes Active: its warming writes drop the markers), and with
// --standby-guard off from every involved cluster; a source's guard stays
// with enforce, and a dry run writes nothing (review of issue 12, finding
// 1 (b), (c); revguard2: (c) had no test).
func TestGuardStepRemovesBeforeTheFirstWrite(t *testing.T) {
	shop := guardDesired(t, "shop", "web", render.RoleStandby, true)
	held, _ := desiredGuard(GuardEnforce, "green", manifest.RoleStandby, []Desired{shop}, nil, nil)
	p := &SwitchoverPlan{From: []string{"blue"}, To: []string{"green"}}
	for _, tc := range []struct {
		name, cluster string
		mode          GuardMode
		dryRun        bool
		removed       bool
	}{
		{name: "target, enforce", cluster: "green", mode: GuardEnforce, removed: true},
		{name: "target, warn", cluster: "green", mode: GuardWarn, removed: true},
		{name: "source, enforce", cluster: "blue", mode: GuardEnforce},
		{name: "source, off", cluster: "blue", mode: GuardOff, removed: true},
		{name: "target, off", cluster: "green", mode: GuardOff, removed: true},
		{name: "target, dry run", cluster: "green", mode: GuardEnforce, dryRun: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := *held
			ft := &fakeGuardTarget{user: "tandem", current: &g}
			r := &run{m: &manifest.Manifest{}, opts: Options{StandbyGuard: tc.mode, DryRun: tc.dryRun, Logger: slog.New(slog.DiscardHandler)}}
			x := &swCluster{c: manifest.Cluster{Name: tc.cluster, Role: manifest.RoleStandby}, t: ft}
			r.guardStep(context.Background(), x, p, manifest.RoleStandby, nil, true)
			switch {
			case tc.removed && (ft.writeRuns != 1 || ft.written != nil):
				t.Errorf("%d writes, left %+v; want the guard removed", ft.writeRuns, ft.written)
			case !tc.removed && ft.writeRuns != 0:
				t.Errorf("%d writes (%+v); want the guard untouched", ft.writeRuns, ft.written)
			}
		})
	}
}
