package reconciler

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/tandem-gitops/tandem/clusters"
)

// liveCRDs compares the CRDs of a release's chart (its crds/ directories)
// with the cluster's. Helm creates them at the release's first install and
// never upgrades them, so for an installed release a missing or older CRD is
// reported with what to do about it; for a release not installed yet they
// are what the install will create (Helm skips CRDs that exist). Only the
// fields the chart sets are compared, so the API server's defaults are no
// difference.
func liveCRDs(ctx context.Context, snap *clusters.Snapshot, d Desired, installed bool, mask *SecretMask) ([]ObjectDiff, []string, error) {
	if len(d.Result.CRDs) == 0 || snap == nil {
		return nil, nil, nil
	}
	objs := make([]*unstructured.Unstructured, 0, len(d.Result.CRDs))
	for _, o := range d.Result.CRDs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(o.Body, &u.Object); err != nil {
			return nil, nil, fmt.Errorf("release %s: %s: %w", d.key(), o.Source, err)
		}
		objs = append(objs, u)
	}
	live, err := snap.Live(ctx, objs)
	if err != nil {
		return nil, nil, fmt.Errorf("release %s: crds: %w", d.key(), err)
	}
	var out []ObjectDiff
	var notes []string
	for i, u := range objs {
		var od ObjectDiff
		if live[i] == nil {
			od, err = diffObject(nil, u.Object, nil, mask)
			if installed {
				notes = append(notes, fmt.Sprintf("CRD %s is not in the cluster, and Helm creates CRDs only at a release's first install: apply it yourself (kubectl apply --server-side -f <chart>/crds/)", u.GetName()))
			}
		} else {
			sub, _ := setFields(live[i].Object, u.Object).(map[string]any)
			od, err = diffObject(sub, u.Object, nil, mask)
			if od.Change == ChangeChanged && installed {
				notes = append(notes, fmt.Sprintf("CRD %s in the cluster differs from its chart's crds/, and Helm never upgrades CRDs: apply it yourself (kubectl apply --server-side -f <chart>/crds/)", u.GetName()))
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("release %s: CRD %s: %w", d.key(), u.GetName(), err)
		}
		if od.Change != ChangeUnchanged {
			out = append(out, od)
		}
	}
	return out, notes, nil
}

// setFields returns live restricted to the fields desired sets: maps keep
// only desired's keys, lists of equal length are compared item by item, and
// anything else is live's value.
func setFields(live, desired any) any {
	switch d := desired.(type) {
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return live
		}
		out := map[string]any{}
		for k, dv := range d {
			if lv, ok := l[k]; ok {
				out[k] = setFields(lv, dv)
			}
		}
		return out
	case []any:
		l, ok := live.([]any)
		if !ok || len(l) != len(d) {
			return live
		}
		out := make([]any, len(l))
		for i := range l {
			out[i] = setFields(l[i], d[i])
		}
		return out
	}
	return live
}
