package helmchart

import "helm.sh/helm/v3/pkg/chart"

// Copy returns a copy of ch that a Helm action may mutate. Metadata,
// dependency lists, values and the file lists are copied; file contents are
// shared, since nothing writes them.
func Copy(ch *chart.Chart) *chart.Chart {
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
	if ch.Lock != nil {
		l := *ch.Lock
		out.Lock = &l
	}
	out.Values = CopyValues(ch.Values)
	out.Templates = append([]*chart.File(nil), ch.Templates...)
	out.Files = append([]*chart.File(nil), ch.Files...)
	deps := ch.Dependencies()
	copies := make([]*chart.Chart, 0, len(deps))
	for _, d := range deps {
		copies = append(copies, Copy(d))
	}
	// SetDependencies also points each copy's parent at out.
	out.SetDependencies(copies...)
	return &out
}

// CopyValues deep-copies a values tree (maps and lists; scalars are immutable).
func CopyValues(v map[string]any) map[string]any {
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
		return CopyValues(t)
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
