package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
)

// driftRecord is what a drift check keeps of a release between runs, in the
// cluster's state record: the fingerprint (driftFingerprint) of its objects
// when they were last applied by Helm or found in their desired state, and
// the digest of their UIDs and resourceVersions at that moment
// (versionsToken), or "" when that was not known. digest is the release's
// digest in the record that held them: the desired state they were made for.
type driftRecord struct {
	fingerprint, versions, digest string
}

// How a drift check settled an unchanged release (ReleaseReport.DriftCheck).
const (
	// checkedByVersions: not one of its objects was written since they were
	// last applied or found in their desired state.
	checkedByVersions = "versions"
	// checkedByFingerprint: objects were written (a status update, say), but
	// nothing a dry run compares changed.
	checkedByFingerprint = "fingerprint"
	// checkedByDryRun: every object was dry-run and compared.
	checkedByDryRun = "dry-run"
)

// drift compares an unchanged release's objects with the cluster, records
// what drifted and, when asked to, applies the desired objects back.
//
// Two records let it skip work. While a metadata-only List gives every
// object the UID and resourceVersion recorded when they were last applied or
// found in their desired state, no one wrote any of them since (every write
// moves the resourceVersion, a status update too): no object is read. While
// the live objects give the fingerprint recorded then, nothing a dry run
// compares can have changed (every write of a field the fingerprint covers
// moves it): no dry run is needed.
func (r *run) drift(ctx context.Context, cr *clusterRun, s Step, spec manifest.Release, rr *ReleaseReport) error {
	key := s.desired.key()
	prev := cr.checked[key]
	refs := objectRefs(*s.desired)
	// A record of another desired state proves nothing of this one: a run
	// that upgraded the release but wrote no state record (killed, its lock
	// lost) leaves the one before, and the objects put back by hand to the
	// revision before give its fingerprint again.
	if prev.fingerprint != "" && prev.digest == s.desired.Result.Digest && cr.snap != nil {
		if prev.versions != "" {
			v, ok, err := cr.snap.Versions(ctx, refs)
			if err != nil {
				return fmt.Errorf("drift check: %w", err)
			}
			if ok && versionsToken(s, v) == prev.versions {
				cr.record(key, prev)
				rr.DriftCheck = checkedByVersions
				return nil
			}
		}
		desired, err := desiredObjects(*s.desired)
		if err != nil {
			return fmt.Errorf("drift check: %w", err)
		}
		live, err := cr.snap.Live(ctx, desired)
		if err != nil {
			return fmt.Errorf("drift check: %w", err)
		}
		if fp, ok := driftFingerprint(s, desired, live); ok && fp == prev.fingerprint {
			cr.record(key, driftRecord{fingerprint: fp, versions: versionsOf(cr, s, refs, live)})
			rr.DriftCheck = checkedByFingerprint
			return nil
		}
	}
	rr.DriftCheck = checkedByDryRun
	objs, err := liveDrift(ctx, cr.t, cr.snap, cr.c, *s.desired, r.opts.FieldManager, NewSecretMask())
	if err != nil {
		return fmt.Errorf("drift check: %w", err)
	}
	var fix []*unstructured.Unstructured
	desired := make([]*unstructured.Unstructured, 0, len(objs))
	live := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		desired, live = append(desired, o.rendered), append(live, o.live)
		if o.Change == ChangeUnchanged {
			continue
		}
		rr.Drifted = append(rr.Drifted, o.ID())
		fix = append(fix, o.desired)
	}
	if len(fix) == 0 {
		// Found in the desired state: the objects as listed are the record.
		if fp, ok := driftFingerprint(s, desired, live); ok {
			cr.record(key, driftRecord{fingerprint: fp, versions: versionsOf(cr, s, refs, live)})
		}
		return nil
	}
	if !(r.opts.CorrectDrift || spec.DriftCorrection) {
		return nil
	}
	if err := cr.t.Apply(ctx, s.Namespace, s.Name, fix, r.opts.FieldManager); err != nil {
		return fmt.Errorf("correct drift: %w", err)
	}
	rr.Corrected = append([]string(nil), rr.Drifted...)
	return nil
}

// recordApplied records, after an install or upgrade turned healthy, the
// fingerprint of the objects as Helm wrote them, so the next drift check
// needs no dry run. Only when every object Helm wrote holds every field the
// render set, at its rendered value: for an object Helm found unchanged and
// read back, a hand edit between its read and its read-back would otherwise
// be taken for the desired state. Otherwise nothing is recorded and the next
// drift check dry-runs the release.
//
// The versions record is of the objects as the health wait last saw them
// (healthy: a Deployment's status has moved since Helm's write), when they
// give the same fingerprint as the objects Helm wrote — nothing but what
// the fingerprint leaves out changed in between, so they are in the desired
// state as well — and of the written objects otherwise (the next check then
// reads them and compares fingerprints).
func recordApplied(cr *clusterRun, s Step, written []*unstructured.Unstructured, healthy []clusters.ObjectStatus) {
	desired, err := desiredObjects(*s.desired)
	if err != nil || len(desired) == 0 {
		return
	}
	byKey := make(map[objectKey]*unstructured.Unstructured, len(written))
	for _, u := range written {
		byKey[keyOf(u)] = u
	}
	live := make([]*unstructured.Unstructured, len(desired))
	for i, d := range desired {
		l := byKey[keyOf(d)]
		if !clusters.Holds(s.Namespace, s.Name, d, l) {
			return
		}
		live[i] = l
	}
	fp, ok := driftFingerprint(s, desired, live)
	if !ok {
		return
	}
	versioned := lastInDesiredState(s, desired, live, fp, healthy)
	cr.record(s.desired.key(), driftRecord{fingerprint: fp, versions: versionsOf(cr, s, objectRefs(*s.desired), versioned)})
}

// lastInDesiredState is live (the objects as Helm wrote them, fingerprint
// fp) with each object the health wait saw later in its place, when those
// give the same fingerprint: nothing the fingerprint covers was written in
// between. Otherwise (a hand edit during the wait) it is live.
func lastInDesiredState(s Step, desired, live []*unstructured.Unstructured, fp string, healthy []clusters.ObjectStatus) []*unstructured.Unstructured {
	seen := lastSeen(live, healthy)
	if seen == nil {
		return live
	}
	if fp2, ok := driftFingerprint(s, desired, seen); !ok || fp2 != fp {
		return live
	}
	return seen
}

// lastSeen is live with each object the health wait saw later (the same
// object, by UID, at another resourceVersion) in its place; nil when the
// wait saw none.
func lastSeen(live []*unstructured.Unstructured, healthy []clusters.ObjectStatus) []*unstructured.Unstructured {
	byKey := map[objectKey]*unstructured.Unstructured{}
	for _, st := range healthy {
		if st.Object != nil {
			byKey[keyOf(st.Object)] = st.Object
		}
	}
	var out []*unstructured.Unstructured
	for i, l := range live {
		u := byKey[keyOf(l)]
		if u == nil || u.GetUID() != l.GetUID() || u.GetResourceVersion() == l.GetResourceVersion() {
			continue
		}
		if out == nil {
			out = slices.Clone(live)
		}
		out[i] = u
	}
	return out
}

// objectRefs names a release's rendered objects, in order, as
// desiredObjects parses them.
func objectRefs(d Desired) []clusters.ObjectRef {
	out := make([]clusters.ObjectRef, len(d.Result.Objects))
	for i, o := range d.Result.Objects {
		out[i] = clusters.ObjectRef{APIVersion: o.APIVersion, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}
	}
	return out
}

// versionsOf is the versions record of live objects in hand (listed, or as
// Helm's writes returned them), "" when one lacks what it needs.
func versionsOf(cr *clusterRun, s Step, refs []clusters.ObjectRef, live []*unstructured.Unstructured) string {
	if cr.snap == nil {
		return ""
	}
	v, ok := cr.snap.VersionsOf(refs, live)
	if !ok {
		return ""
	}
	return versionsToken(s, v)
}

// versionsToken binds a Versions digest to what the drift check compared
// the objects with: the release's desired state (its digest) and its ignore
// rules. The same objects, unwritten, are no proof of a match once either
// changed (removing a rule that hid a hand edit must make the next check
// look again).
func versionsToken(s Step, versions string) string {
	rules, err := json.Marshal(s.desired.Spec.Ignore)
	if err != nil {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", s.Namespace, s.Name, s.desired.Result.Digest, versions)
	h.Write(rules)
	return "t1:" + hex.EncodeToString(h.Sum(nil)[:18])
}

func driftMessage(rr ReleaseReport) string {
	switch {
	case len(rr.Corrected) > 0:
		return "drift corrected: " + strings.Join(rr.Corrected, ", ")
	case len(rr.Drifted) > 0:
		return "drifted (left as is; --correct-drift puts it back): " + strings.Join(rr.Drifted, ", ")
	}
	return ""
}

// driftFingerprint is the record of a release's objects: their fingerprint,
// and the release's ignore rules, which decide what a drift check compares
// (removing a rule that hid a hand edit must make the next check look again,
// though the objects did not change).
func driftFingerprint(s Step, desired, live []*unstructured.Unstructured) (string, bool) {
	fp, ok := clusters.Fingerprint(s.Namespace, s.Name, desired, live)
	if !ok || len(s.desired.Spec.Ignore) == 0 {
		return fp, ok
	}
	rules, err := json.Marshal(s.desired.Spec.Ignore)
	if err != nil {
		return "", false
	}
	sum := sha256.Sum256(rules)
	return fp + "+" + hex.EncodeToString(sum[:8]), true
}
