package manifest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	yaml "go.yaml.in/yaml/v3"
)

const schemaPath = "../docs/tandem.schema.json"

// TestSchemaMatchesTheLoader walks the Go types tandem.yaml decodes into
// (their json tags, as the decoder does) and fails when a field is missing
// from docs/tandem.schema.json, when the schema names a field the loader does
// not know, or when an object of the schema allows unknown fields (the
// loader refuses them). Every schema property has a description.
func TestSchemaMatchesTheLoader(t *testing.T) {
	b, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatalf("%s: %v", schemaPath, err)
	}
	resolve := func(node map[string]any) map[string]any {
		if ref, ok := node["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, "#/$defs/")
			def, _ := schema["$defs"].(map[string]any)[name].(map[string]any)
			if def == nil {
				t.Fatalf("schema: %s does not resolve", ref)
			}
			return def
		}
		return node
	}
	var walk func(path string, typ reflect.Type, node map[string]any)
	walk = func(path string, typ reflect.Type, node map[string]any) {
		node = resolve(node)
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		switch typ.Kind() {
		case reflect.Slice:
			items, _ := node["items"].(map[string]any)
			if items == nil {
				t.Errorf("schema %s: a list without items", path)
				return
			}
			walk(path+"[]", typ.Elem(), items)
		case reflect.Map:
			if typ.Elem().Kind() == reflect.Interface {
				return // set: any YAML values
			}
			ap, _ := node["additionalProperties"].(map[string]any)
			if ap == nil {
				t.Errorf("schema %s: a map without additionalProperties", path)
				return
			}
			walk(path+".*", typ.Elem(), ap)
		case reflect.Struct:
			if node["additionalProperties"] != false {
				t.Errorf("schema %s: additionalProperties must be false (the loader refuses unknown fields)", path)
			}
			props, _ := node["properties"].(map[string]any)
			known := map[string]bool{}
			for i := 0; i < typ.NumField(); i++ {
				f := typ.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name == "-" || !f.IsExported() {
					continue
				}
				known[name] = true
				p, _ := props[name].(map[string]any)
				if p == nil {
					t.Errorf("schema %s: the loader's field %s (%s.%s) is missing", path, name, typ.Name(), f.Name)
					continue
				}
				d1, _ := p["description"].(string)
				d2, _ := resolve(p)["description"].(string)
				if d1 == "" && d2 == "" {
					t.Errorf("schema %s.%s: no description", path, name)
				}
				walk(path+"."+name, f.Type, p)
			}
			var extra []string
			for name := range props {
				if !known[name] {
					extra = append(extra, name)
				}
			}
			sort.Strings(extra)
			for _, name := range extra {
				t.Errorf("schema %s: names %s, which the loader (%s) does not know", path, name, typ.Name())
			}
		}
	}
	walk("tandem.yaml", reflect.TypeOf(Manifest{}), schema)
}

// TestManifestsValidateAgainstTheSchema: the example manifest, every
// testdata manifest the loader accepts, validates against the schema; the
// fixtures with unknown fields, wrong types or enums do not.
func TestManifestsValidateAgainstTheSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	sch, err := c.Compile(schemaPath)
	if err != nil {
		t.Fatalf("compile %s: %v", schemaPath, err)
	}
	validate := func(t *testing.T, file string) error {
		t.Helper()
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		// Through JSON, as an editor sees the document.
		j, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(j)))
		if err != nil {
			t.Fatal(err)
		}
		return sch.Validate(inst)
	}
	var accepted []string
	for _, root := range []string{"../examples", "../cmd", "../e2e", "testdata"} {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && d.Name() == "tandem.yaml" {
				accepted = append(accepted, p)
			}
			return nil
		})
	}
	valid, _ := filepath.Glob("testdata/valid-*.yaml")
	accepted = append(accepted, valid...)
	if len(accepted) < 5 {
		t.Fatalf("found only %v", accepted)
	}
	for _, f := range accepted {
		t.Run(f, func(t *testing.T) {
			err := validate(t, f)
			if err == nil {
				return
			}
			// A manifest the loader accepts must pass the schema; one it
			// refuses (attack fixtures) may fail both.
			dir := filepath.Dir(f)
			if filepath.Base(f) != "tandem.yaml" {
				t.Fatalf("%s: %v", f, err)
			}
			if _, lerr := Load(dir, DefaultLoadOptions()); lerr == nil {
				t.Fatalf("%s loads but fails the schema: %v", f, err)
			}
		})
	}
	for _, f := range []string{"invalid-unknown-fields.yaml", "invalid-enums.yaml", "invalid-dns.yaml", "invalid-no-clusters.yaml"} {
		t.Run(f, func(t *testing.T) {
			if err := validate(t, filepath.Join("testdata", f)); err == nil {
				t.Fatalf("%s passes the schema; the loader refuses it", f)
			}
		})
	}
}
