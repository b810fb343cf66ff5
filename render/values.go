package render

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"
)

// ValuesLayer is one layer of user values: either a values file or a set of
// dotted keys (helm --set). Layers are merged in order, later ones winning.
type ValuesLayer struct {
	// Source names the layer in errors, e.g. "values/example.yaml" or "releases[2].set".
	Source string
	// File holds a values file's YAML; used when Set is nil.
	File []byte
	// Set holds dotted keys and scalar values, e.g. {"image.tag": "1.2.3"}.
	Set map[string]any
}

// MergeValues folds layers, lowest precedence first, into one values map, with
// the semantics of `helm -f a.yaml -f b.yaml --set k=v`: maps merge key by key,
// everything else is replaced.
func MergeValues(layers []ValuesLayer) (map[string]any, error) {
	out := map[string]any{}
	for _, l := range layers {
		if l.Set != nil {
			if err := applySet(out, l.Set); err != nil {
				return nil, fmt.Errorf("%s: %w", l.Source, err)
			}
			continue
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(l.File, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", l.Source, err)
		}
		out = mergeMaps(out, m)
	}
	return out, nil
}

// mergeMaps is helm's own -f merge (pkg/cli/values keeps it unexported).
func mergeMaps(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if v, ok := v.(map[string]any); ok {
			if bv, ok := out[k]; ok {
				if bv, ok := bv.(map[string]any); ok {
					out[k] = mergeMaps(bv, v)
					continue
				}
			}
		}
		out[k] = v
	}
	return out
}

// applySet applies dotted keys in sorted order with Helm's strvals parser:
// strings keep their type (like --set-string, because the manifest already
// says they are strings), numbers and booleans keep theirs.
func applySet(dst map[string]any, set map[string]any) error {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var err error
		switch v := set[k].(type) {
		case string:
			err = strvals.ParseIntoString(k+"="+escapeSetValue(v), dst)
		case bool, int, int64:
			err = strvals.ParseInto(fmt.Sprintf("%s=%v", k, v), dst)
		case float64:
			err = strvals.ParseInto(k+"="+strconv.FormatFloat(v, 'f', -1, 64), dst)
		case nil:
			err = strvals.ParseInto(k+"=null", dst)
		default:
			err = fmt.Errorf("value must be a string, number, boolean or null, not %T", v)
		}
		if err != nil {
			return fmt.Errorf("set %q: %w", k, err)
		}
	}
	return nil
}

func escapeSetValue(v string) string {
	return strings.NewReplacer(`\`, `\\`, `,`, `\,`).Replace(v)
}
