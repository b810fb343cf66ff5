package reconciler

import (
	"fmt"
	"strings"

	"github.com/tandem-gitops/tandem/render"
)

// diffHooks compares a release's hooks in two renders (either may be nil),
// as diffRelease compares its objects: Helm runs hooks itself, outside the
// manifest, so without this a change to a migration Job would be invisible
// in a plan. Each changed hook says when it runs and whether it runs on
// this cluster at all.
func diffHooks(old, cur *render.Result, mask *SecretMask) ([]ObjectDiff, error) {
	var oldHooks, curHooks []render.Object
	if old != nil {
		oldHooks = old.HookObjects
	}
	if cur != nil {
		curHooks = cur.HookObjects
	}
	oldObjs, err := objectsIn(oldHooks)
	if err != nil {
		return nil, fmt.Errorf("hooks: %w", err)
	}
	curObjs, err := objectsIn(curHooks)
	if err != nil {
		return nil, fmt.Errorf("hooks: %w", err)
	}
	events := map[objectKey]string{}
	for _, o := range oldHooks {
		events[objectKeyOf(o)] = o.Hook
	}
	for _, o := range curHooks {
		events[objectKeyOf(o)] = o.Hook
	}
	skipped := cur != nil && cur.SkipHooks || cur == nil && old != nil && old.SkipHooks
	var out []ObjectDiff
	for _, k := range sortedObjectKeys(oldObjs, curObjs) {
		od, err := diffObject(oldObjs[k], curObjs[k], nil, mask)
		if err != nil {
			return nil, fmt.Errorf("hook %s %s: %w", k.kind, k.name, err)
		}
		if od.Change == ChangeUnchanged {
			continue
		}
		od.Hook, od.HookSkipped = events[k], skipped
		out = append(out, od)
	}
	return out, nil
}

// hooksNote says which of a release's hooks an install or upgrade (op) runs
// on this cluster, or that it runs none of them here; "" if the chart has
// none for op.
func hooksNote(r *render.Result, op string) string {
	var names []string
	for _, o := range r.HookObjects {
		for _, ev := range strings.Split(o.Hook, ",") {
			if ev = strings.TrimSpace(ev); ev == "pre-"+op || ev == "post-"+op {
				names = append(names, o.ID()+" ("+o.Hook+")")
				break
			}
		}
	}
	if len(names) == 0 {
		return ""
	}
	if r.SkipHooks {
		return "hooks not run on this cluster (the release is scaled to zero here; standbyHooks: run runs them): " + strings.Join(names, ", ")
	}
	return "hooks the " + op + " runs: " + strings.Join(names, ", ")
}
