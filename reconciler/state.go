package reconciler

import (
	"context"
	"time"

	"github.com/tandem-gitops/tandem/clusters"
)

// keepsHealthy reports whether an unchanged release that did not end ok is
// still at the revision tandem last saw healthy.
func keepsHealthy(rr ReleaseReport, old clusters.ReleaseState) bool {
	return rr.Action == ActionUnchanged && old.Healthy && old.Revision == rr.Revision && rr.Revision > 0
}

// fingerprintFor is the drift-check record to keep for a release: this
// run's, or — for a release left unchanged that this run did not record
// (its drift check was off, or found drift) — the last one, while the
// desired state it was made for (the digest) is the same: a fingerprint
// says "objects with this content were in this desired state", which a run
// that did not look does not make less true. Otherwise one --detect-drift=false
// run would cost the next run a dry run of every object.
func fingerprintFor(cr *clusterRun, k ReleaseKey, rr ReleaseReport, old clusters.ReleaseState, digest string) driftRecord {
	if rec := cr.recorded(k); rec.fingerprint != "" {
		return rec
	}
	if rr.Action == ActionUnchanged && old.Digest != "" && old.Digest == digest {
		return driftRecord{fingerprint: old.Fingerprint, versions: old.Versions}
	}
	return driftRecord{}
}

// writeState records what this run did in the cluster's state record. A run
// restricted with --release merges: the records of releases it did not
// touch are kept. A release that was not applied keeps its last record, so
// what tandem knows of its health is not lost.
func (r *run) writeState(ctx context.Context, cr *clusterRun, rep ClusterReport, desired []Desired) error {
	digests := map[ReleaseKey]string{}
	for _, d := range desired {
		digests[d.key()] = d.Result.Digest
	}
	prev := map[ReleaseKey]clusters.ReleaseState{}
	if cr.prev != nil {
		for _, rs := range cr.prev.Releases {
			prev[ReleaseKey{rs.Namespace, rs.Name}] = rs
		}
	}
	records := map[ReleaseKey]clusters.ReleaseState{}
	if len(r.opts.Selection.Releases) > 0 {
		for k, rs := range prev {
			records[k] = rs
		}
	}
	for _, rr := range rep.Releases {
		k := ReleaseKey{rr.Namespace, rr.Name}
		if rr.Outcome == OutcomeSkipped {
			if old, ok := prev[k]; ok {
				records[k] = old
			}
			continue
		}
		rec := fingerprintFor(cr, k, rr, prev[k], digests[k])
		records[k] = clusters.ReleaseState{Name: rr.Name, Namespace: rr.Namespace, Digest: digests[k],
			Revision: rr.Revision, Outcome: string(rr.Outcome), Error: rr.Error, Duration: time.Duration(rr.Duration),
			Drifted: rr.Drifted, Corrected: len(rr.Corrected) > 0, Fingerprint: rec.fingerprint, Versions: rec.versions,
			// A step that ends ok has seen its revision healthy (an
			// install or upgrade after its health wait, an unchanged
			// release confirmed before or verified now); an unchanged
			// release keeps what was known of its revision even when its
			// drift check failed.
			Healthy: (rr.Outcome == OutcomeOK && rr.RolledBackTo == 0) || keepsHealthy(rr, prev[k])}
	}
	for _, p := range rep.Pruned {
		if p.Outcome == OutcomeOK {
			delete(records, ReleaseKey{p.Namespace, p.Name})
		}
	}
	st := clusters.State{Cluster: cr.c.Name, Role: string(cr.c.Role), Commit: r.opts.Commit, Ref: r.opts.Ref,
		AppliedAt: time.Now().UTC(), LastError: rep.Error, ClusterUID: cr.uid, ManifestID: manifestID(r.m.ID),
		KubeVersion: cr.caps.KubeVersion, APIVersions: cr.caps.APIVersions}
	if st.KubeVersion == "" && cr.prev != nil { // not rendered live this time: keep what is known
		st.KubeVersion, st.APIVersions = cr.prev.KubeVersion, cr.prev.APIVersions
	}
	st.Peers = peersAfter(cr.prev, r.peers)
	r.keepSwitchover(&st, cr.prev)
	if len(r.opts.Selection.Releases) == 0 && rep.Error == "" && st.Switchover == nil && !r.opts.Uncommitted {
		st.AppliedCommit = st.Commit
	}
	for _, k := range sortedKeys(records) {
		st.Releases = append(st.Releases, records[k])
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return cr.t.WriteState(sctx, st)
}

// forgetAppliedCommit clears the state record's applied commit before a run
// writes anything that may change the cluster. A run that dies (kill -9),
// loses its lock or cannot write its record half-way leaves no record of its
// own, and the cluster then holds part of this commit: no longer all of the
// one the record names. CI's approval plan compares the next push with that
// commit, so a revert of this one would show nothing while its reconcile
// undoes what was applied. The record is written back with the commit once
// the run ends complete.
func (r *run) forgetAppliedCommit(ctx context.Context, cr *clusterRun, plan ClusterPlan) error {
	if cr.prev == nil || cr.prev.AppliedCommit == "" || !r.planWrites(plan) {
		return nil
	}
	st := *cr.prev
	st.AppliedCommit = ""
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cr.t.WriteState(sctx, st); err != nil {
		return err
	}
	cr.prev.AppliedCommit = ""
	return nil
}

// planWrites says whether carrying out the plan may change the cluster's
// releases: an install, upgrade, recovery or prune, or a drift correction.
func (r *run) planWrites(plan ClusterPlan) bool {
	if len(plan.Prune) > 0 {
		return true
	}
	for _, s := range plan.Steps {
		if s.Error != "" {
			continue
		}
		if s.Action != ActionUnchanged || r.opts.CorrectDrift || (s.desired != nil && s.desired.Spec.DriftCorrection) {
			return true
		}
	}
	return false
}
