package clusters

import (
	"helm.sh/helm/v3/pkg/chart"
)

// copyChart returns a copy of ch that a Helm action may mutate. Helm's
// dependency processing rewrites the chart it is given (it drops disabled
// subcharts, renames aliased ones and merges imported values), so sharing
// one loaded chart between operations would both race and leak one
// release's dependency choices into the next.
//
// Metadata, dependency lists and values are copied; templates and files are
// shared, since nothing writes them.
func copyChart(ch *chart.Chart) *chart.Chart {
	if ch == nil {
		return nil
	}
	out := *ch
	if ch.Metadata != nil {
		md := *ch.Metadata
		md.Dependencies = nil
		for _, d := range ch.Metadata.Dependencies {
			if d == nil {
				md.Dependencies = append(md.Dependencies, nil)
				continue
			}
			dc := *d
			md.Dependencies = append(md.Dependencies, &dc)
		}
		out.Metadata = &md
	}
	out.Values = copyValues(ch.Values)
	deps := ch.Dependencies()
	copies := make([]*chart.Chart, 0, len(deps))
	for _, d := range deps {
		copies = append(copies, copyChart(d))
	}
	// SetDependencies also points each copy's parent at out.
	out.SetDependencies(copies...)
	return &out
}

// copyValues deep-copies a values tree (maps and lists; scalars are immutable).
func copyValues(v map[string]any) map[string]any {
	if v == nil {
		return nil
	}
	out := make(map[string]any, len(v))
	for k, x := range v {
		out[k] = copyValue(x)
	}
	return out
}

func copyValue(x any) any {
	switch t := x.(type) {
	case map[string]any:
		return copyValues(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = copyValue(e)
		}
		return out
	default:
		return x
	}
}
