package reconciler

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tandem-gitops/tandem/manifest"
)

// drift compares an unchanged release's objects with the cluster, records
// what drifted and, when asked to, applies the desired objects back. Objects
// whose resourceVersion has not moved since the last check found them in
// their desired state cannot have drifted: when that holds for every object of
// the release, no dry run is needed.
func (r *run) drift(ctx context.Context, cr *clusterRun, s Step, spec manifest.Release, rr *ReleaseReport) error {
	key := s.desired.key()
	if prev := cr.checked[key]; len(prev) > 0 && cr.snap != nil {
		desired, err := desiredObjects(*s.desired)
		if err != nil {
			return fmt.Errorf("drift check: %w", err)
		}
		live, err := cr.snap.Live(ctx, desired)
		if err != nil {
			return fmt.Errorf("drift check: %w", err)
		}
		if unmoved(desired, live, prev) {
			cr.record(key, prev)
			return nil
		}
	}
	objs, err := liveDrift(ctx, cr.t, cr.snap, cr.c, *s.desired, r.opts.FieldManager, NewSecretMask())
	if err != nil {
		return fmt.Errorf("drift check: %w", err)
	}
	var fix []*unstructured.Unstructured
	checked := map[string]string{}
	for _, o := range objs {
		if o.Change == ChangeUnchanged {
			checked[o.key.String()] = o.liveVersion
			continue
		}
		rr.Drifted = append(rr.Drifted, o.ID())
		fix = append(fix, o.desired)
	}
	cr.record(key, checked)
	if len(fix) == 0 || !(r.opts.CorrectDrift || spec.DriftCorrection) {
		return nil
	}
	if err := cr.t.Apply(ctx, s.Namespace, s.Name, fix, r.opts.FieldManager); err != nil {
		return fmt.Errorf("correct drift: %w", err)
	}
	rr.Corrected = append([]string(nil), rr.Drifted...)
	return nil
}

// unmoved reports whether every desired object exists with the
// resourceVersion recorded when it was last found in its desired state.
func unmoved(desired, live []*unstructured.Unstructured, prev map[string]string) bool {
	if len(prev) != len(desired) {
		return false
	}
	for i, u := range desired {
		v, ok := prev[keyOf(u).String()]
		if !ok || live[i] == nil || live[i].GetResourceVersion() != v {
			return false
		}
	}
	return true
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
