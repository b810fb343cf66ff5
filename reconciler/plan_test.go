package reconciler

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

func desiredRel(name string, wave int, digest string, mod ...func(*manifest.Release)) Desired {
	r := manifest.Release{Name: name, Namespace: "ns", Wave: wave}
	for _, f := range mod {
		f(&r)
	}
	return Desired{Spec: r, Result: &render.Result{Release: name, Namespace: "ns", Digest: digest}}
}

func owned(name string, rev int, status, digest string) Deployed {
	return Deployed{Name: name, Namespace: "ns", Revision: rev, Status: status, Labels: map[string]string{LabelManagedBy: ManagedByValue, LabelDigest: digest, LabelManifest: manifest.DefaultID}}
}

func at(d Deployed, t time.Time) Deployed { d.Updated = t; return d }

func withRun(d Deployed, run string) Deployed { d.Labels[LabelRun] = run; return d }

func copiedRun(d Deployed) Deployed {
	d.EarlierRuns = map[string]bool{d.Labels[LabelRun]: true}
	return d
}

func TestPlan(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	blue := manifest.Cluster{Name: "blue", Role: manifest.RoleActive}
	adopt := func(r *manifest.Release) { r.Adopt = true }
	tests := []struct {
		name     string
		desired  []Desired
		deployed []Deployed
		opts     PlanOptions
		steps    []Step
		prune    []Step
		blocked  bool
		changes  bool
	}{
		{
			name:    "fresh cluster installs in wave order",
			desired: []Desired{desiredRel("web", 1, "d1"), desiredRel("db", 0, "d2")},
			steps: []Step{{Name: "db", Namespace: "ns", Action: ActionInstall, Reason: "not installed"},
				{Name: "web", Namespace: "ns", Wave: 1, Action: ActionInstall, Reason: "not installed"}},
			changes: true,
		},
		{
			name:     "same digest is unchanged",
			desired:  []Desired{desiredRel("web", 0, "d1")},
			deployed: []Deployed{owned("web", 4, "deployed", "d1")},
			steps:    []Step{{Name: "web", Namespace: "ns", Action: ActionUnchanged, FromRevision: 4}},
		},
		{
			name:     "new digest upgrades",
			desired:  []Desired{desiredRel("web", 0, "d2")},
			deployed: []Deployed{owned("web", 4, "deployed", "d1")},
			steps:    []Step{{Name: "web", Namespace: "ns", Action: ActionUpgrade, FromRevision: 4, Reason: "content changed"}},
			changes:  true,
		},
		{
			name:     "failed release is retried even with the same digest",
			desired:  []Desired{desiredRel("web", 0, "d1")},
			deployed: []Deployed{owned("web", 5, "failed", "d1")},
			steps:    []Step{{Name: "web", Namespace: "ns", Action: ActionUpgrade, FromRevision: 5, Reason: "last attempt failed"}},
			changes:  true,
		},
		{
			name:     "stuck pending upgrade older than timeout plus lease is recovered",
			desired:  []Desired{desiredRel("web", 0, "d1")},
			deployed: []Deployed{at(owned("web", 6, "pending-upgrade", "d1"), now.Add(-6*time.Minute))},
			opts:     PlanOptions{Now: now, LeaseDuration: 30 * time.Second},
			steps: []Step{{Name: "web", Namespace: "ns", Action: ActionUpgrade, FromRevision: 6, Recover: "pending-upgrade",
				Reason: "recovering a release stuck in pending-upgrade: untouched for 6m0s, longer than its timeout plus the lock's lease (5m30s)"}},
			changes: true,
		},
		{
			// Item 6 of the safety issue: a person's helm rollback in progress must not be raced.
			name:     "a recent pending revision without a tandem run is an operation in progress",
			desired:  []Desired{desiredRel("web", 0, "d1")},
			deployed: []Deployed{at(owned("web", 6, "pending-rollback", "d1"), now.Add(-time.Minute))},
			opts:     PlanOptions{Now: now, LeaseDuration: 30 * time.Second, RunID: "run-b"},
			steps: []Step{{Name: "web", Namespace: "ns", Action: ActionUpgrade, FromRevision: 6,
				Error: "operation in progress (by a Helm client outside tandem (helm upgrade, helm rollback)): revision 6 is pending-rollback since 2026-12-01T11:59:00Z; tandem recovers it only once it is abandoned (older than the release timeout plus the lock's lease duration)"}},
			changes: true,
		},
		{
			name:     "a pending revision left by another tandem run, which lost the lock, is recovered at once",
			desired:  []Desired{desiredRel("web", 0, "d1")},
			deployed: []Deployed{withRun(at(owned("web", 6, "pending-upgrade", "d1"), now.Add(-time.Minute)), "run-a")},
			opts:     PlanOptions{Now: now, LeaseDuration: 30 * time.Second, RunID: "run-b"},
			steps: []Step{{Name: "web", Namespace: "ns", Action: ActionUpgrade, FromRevision: 6, Recover: "pending-upgrade",
				Reason: "recovering a release stuck in pending-upgrade: left by tandem run run-a, which no longer holds the cluster's lock"}},
			changes: true,
		},
		{
			// Helm copies labels onto the revisions a person's helm upgrade/rollback writes.
			name:     "a pending revision whose run label an earlier revision carries is a Helm client's, in progress",
			desired:  []Desired{desiredRel("web", 0, "d1")},
			deployed: []Deployed{copiedRun(withRun(at(owned("web", 6, "pending-rollback", "d1"), now.Add(-time.Minute)), "run-a"))},
			opts:     PlanOptions{Now: now, LeaseDuration: 30 * time.Second, RunID: "run-b"},
			steps: []Step{{Name: "web", Namespace: "ns", Action: ActionUpgrade, FromRevision: 6,
				Error: "operation in progress (by a Helm client outside tandem (helm upgrade, helm rollback)): revision 6 is pending-rollback since 2026-12-01T11:59:00Z; tandem recovers it only once it is abandoned (older than the release timeout plus the lock's lease duration)"}},
			changes: true,
		},
		{
			// Item 7: a run killed during the health wait left revision 4 deployed but never seen healthy.
			name:     "an unchanged revision never seen healthy is verified",
			desired:  []Desired{desiredRel("web", 0, "d1")},
			deployed: []Deployed{owned("web", 4, "deployed", "d1")},
			opts:     PlanOptions{Healthy: map[ReleaseKey]int{{"ns", "web"}: 3}},
			steps: []Step{{Name: "web", Namespace: "ns", Action: ActionUnchanged, FromRevision: 4, Verify: true,
				Reason: "revision 4 was never seen healthy by tandem (a run ended during its health wait?)"}},
		},
		{
			name:     "unowned release is an error without adopt",
			desired:  []Desired{desiredRel("web", 0, "d1")},
			deployed: []Deployed{{Name: "web", Namespace: "ns", Revision: 2, Status: "deployed"}},
			steps: []Step{{Name: "web", Namespace: "ns", Action: ActionUpgrade, FromRevision: 2,
				Error: "a Helm release ns/web exists that tandem does not manage; set adopt: true on the release to take it over"}},
			changes: true,
		},
		{
			name:     "unowned release is adopted with adopt",
			desired:  []Desired{desiredRel("web", 0, "d1", adopt)},
			deployed: []Deployed{{Name: "web", Namespace: "ns", Revision: 2, Status: "deployed"}},
			steps:    []Step{{Name: "web", Namespace: "ns", Action: ActionUpgrade, FromRevision: 2, Adopt: true, Reason: "adopting an existing release"}},
			changes:  true,
		},
		{
			name:     "owned release no longer desired is pruned within the limit",
			desired:  []Desired{desiredRel("a", 0, "d"), desiredRel("b", 0, "d"), desiredRel("c", 0, "d")},
			deployed: []Deployed{owned("a", 1, "deployed", "d"), owned("b", 1, "deployed", "d"), owned("c", 1, "deployed", "d"), owned("gone", 3, "deployed", "x")},
			opts:     DefaultPlanOptions(),
			steps: []Step{{Name: "a", Namespace: "ns", Action: ActionUnchanged, FromRevision: 1}, {Name: "b", Namespace: "ns", Action: ActionUnchanged, FromRevision: 1},
				{Name: "c", Namespace: "ns", Action: ActionUnchanged, FromRevision: 1}},
			prune:   []Step{{Name: "gone", Namespace: "ns", Action: ActionPrune, FromRevision: 3, Reason: "no longer in the manifest for this cluster"}},
			changes: true,
		},
		{
			name:     "emptied manifest trips the prune guard",
			deployed: []Deployed{owned("a", 1, "deployed", "d"), owned("b", 1, "deployed", "d")},
			opts:     DefaultPlanOptions(),
			prune: []Step{{Name: "a", Namespace: "ns", Action: ActionPrune, FromRevision: 1, Reason: "no longer in the manifest for this cluster"},
				{Name: "b", Namespace: "ns", Action: ActionPrune, FromRevision: 1, Reason: "no longer in the manifest for this cluster"}},
			blocked: true,
		},
		{
			name:     "allow mass prune lifts the guard",
			deployed: []Deployed{owned("a", 1, "deployed", "d")},
			opts:     PlanOptions{MaxPrune: 0.25, AllowMassPrune: true},
			prune:    []Step{{Name: "a", Namespace: "ns", Action: ActionPrune, FromRevision: 1, Reason: "no longer in the manifest for this cluster"}},
			changes:  true,
		},
		{
			name:     "releases tandem does not own are never pruned",
			deployed: []Deployed{{Name: "theirs", Namespace: "ns", Revision: 1, Status: "deployed"}},
			opts:     DefaultPlanOptions(),
		},
		{
			name:     "no prune in a run restricted to some releases",
			desired:  []Desired{desiredRel("a", 0, "d")},
			deployed: []Deployed{owned("a", 1, "deployed", "d"), owned("b", 1, "deployed", "d"), owned("c", 1, "deployed", "d"), owned("e", 1, "deployed", "d"), owned("f", 1, "deployed", "d")},
			opts:     PlanOptions{MaxPrune: 1, NoPrune: true},
			steps:    []Step{{Name: "a", Namespace: "ns", Action: ActionUnchanged, FromRevision: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.Healthy == nil { // every deployed revision was seen healthy
				tt.opts.Healthy = map[ReleaseKey]int{}
				for _, d := range tt.deployed {
					tt.opts.Healthy[d.key()] = d.Revision
				}
			}
			p := Plan(blue, tt.desired, tt.deployed, tt.opts)
			opt := cmpopts.IgnoreUnexported(Step{})
			if diff := cmp.Diff(tt.steps, p.Steps, opt, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.prune, p.Prune, opt, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("prune (-want +got):\n%s", diff)
			}
			if got := p.PruneBlocked != ""; got != tt.blocked {
				t.Errorf("prune blocked = %v (%q), want %v", got, p.PruneBlocked, tt.blocked)
			}
			if got := p.Changes(); got != tt.changes {
				t.Errorf("Changes() = %v, want %v", got, tt.changes)
			}
		})
	}
}

func TestMaxPrunes(t *testing.T) {
	for _, tc := range []struct {
		owned int
		share float64
		want  int
	}{{4, 0.25, 1}, {3, 0.25, 0}, {5, 0.25, 1}, {8, 0.25, 2}, {2, 0.5, 1}, {10, 0, 0}, {4, 1, 4}} {
		if got := maxPrunes(tc.owned, tc.share); got != tc.want {
			t.Errorf("maxPrunes(%d, %v) = %d, want %d", tc.owned, tc.share, got, tc.want)
		}
	}
}

// Item 8 of the safety issue: two manifests sharing a cluster never prune,
// nor silently take over, each other's releases; releases labelled before
// manifests had IDs belong to the default manifest and get the label.
func TestPlanManifestOwnership(t *testing.T) {
	blue := manifest.Cluster{Name: "blue", Role: manifest.RoleActive}
	ofManifest := func(d Deployed, id string) Deployed { d.Labels[LabelManifest] = id; return d }
	legacy := owned("legacy", 1, "deployed", "d")
	delete(legacy.Labels, LabelManifest) // labelled by tandem before manifest IDs
	deployed := []Deployed{
		ofManifest(owned("mine", 1, "deployed", "d"), "team-a"),
		ofManifest(owned("theirs", 1, "deployed", "d"), "team-b"),
		legacy,
		ofManifest(owned("shared", 2, "deployed", "d"), "team-b"),
	}
	healthy := map[ReleaseKey]int{}
	for _, d := range deployed {
		healthy[d.key()] = d.Revision
	}
	p := Plan(blue, []Desired{desiredRel("shared", 0, "d")}, deployed,
		PlanOptions{MaxPrune: 1, ManifestID: "team-a", Healthy: healthy})
	var pruned []string
	for _, s := range p.Prune {
		pruned = append(pruned, s.Name)
	}
	if diff := cmp.Diff([]string{"mine"}, pruned); diff != "" {
		t.Errorf("team-a prunes (-want +got):\n%s", diff)
	}
	if len(p.Steps) != 1 || !strings.Contains(p.Steps[0].Error, `belongs to tandem manifest "team-b"`) {
		t.Errorf("taking over team-b's release without adopt: %+v", p.Steps)
	}

	// An unwanted legacy release may be another team's: the default manifest does not prune it.
	p = Plan(blue, nil, []Deployed{legacy, owned("a", 1, "deployed", "d"), owned("b", 1, "deployed", "d")}, PlanOptions{MaxPrune: 1, Healthy: healthy})
	if len(p.Unowned) != 1 || p.Unowned[0].Name != "legacy" {
		t.Errorf("unowned = %+v, want the legacy release reported", p.Unowned)
	}
	for _, s := range p.Prune {
		if s.Name == "legacy" {
			t.Errorf("the default manifest prunes a release of unknown manifest: %+v", p.Prune)
		}
	}

	// The default manifest owns the legacy release: it keeps it, and records ownership once.
	p = Plan(blue, []Desired{desiredRel("legacy", 0, "d")}, deployed, PlanOptions{MaxPrune: 1, Healthy: healthy})
	if len(p.Steps) != 1 || p.Steps[0].Action != ActionUpgrade || !strings.Contains(p.Steps[0].Reason, "ownership") {
		t.Errorf("legacy release under the default manifest: %+v", p.Steps)
	}
	if len(p.Prune) != 0 {
		t.Errorf("the default manifest prunes other manifests' releases: %+v", p.Prune)
	}
}
