package render

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMergeValues(t *testing.T) {
	tests := []struct {
		name    string
		layers  []ValuesLayer
		want    map[string]any
		wantErr bool
	}{
		{name: "precedence: files in order < set < cluster files < cluster set", layers: []ValuesLayer{
			{Source: "a.yaml", File: []byte("image: {repository: r, tag: a}\nreplicas: 1\n")},
			{Source: "b.yaml", File: []byte("image: {tag: b}\n")},
			{Source: "set", Set: map[string]any{"image.tag": "s", "replicas": float64(2)}},
			{Source: "green.yaml", File: []byte("image: {tag: g}\n")},
			{Source: "green set", Set: map[string]any{"replicas": float64(3)}},
		}, want: map[string]any{"image": map[string]any{"repository": "r", "tag": "g"}, "replicas": int64(3)}},
		{name: "string set values keep their type", layers: []ValuesLayer{
			{Source: "set", Set: map[string]any{"tag": "123", "flag": "true", "csv": "a,b"}},
		}, want: map[string]any{"tag": "123", "flag": "true", "csv": "a,b"}},
		{name: "typed set values", layers: []ValuesLayer{
			{Source: "set", Set: map[string]any{"on": true, "n": float64(7)}},
		}, want: map[string]any{"on": true, "n": int64(7)}},
		{name: "list index", layers: []ValuesLayer{
			{Source: "set", Set: map[string]any{"hosts[0]": "a"}},
		}, want: map[string]any{"hosts": []any{"a"}}},
		{name: "bad yaml names the file", layers: []ValuesLayer{{Source: "bad.yaml", File: []byte("a: [")}}, wantErr: true},
		{name: "map set value rejected", layers: []ValuesLayer{{Source: "set", Set: map[string]any{"a": map[string]any{}}}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MergeValues(tt.layers)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want error, got %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
