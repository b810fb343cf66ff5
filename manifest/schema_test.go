package manifest

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
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
	walkSchema(t, nil)
}

// walkSchema walks the schema beside the Go types tandem.yaml decodes into,
// failing as TestSchemaMatchesTheLoader says, and calls visit (when not
// nil) with every schema node and the Go type at its path
// (tandem.yaml.releases[].rollout).
func walkSchema(t *testing.T, visit func(path string, typ reflect.Type, node map[string]any)) {
	t.Helper()
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
		if visit != nil {
			visit(path, typ, node)
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

// TestSchemaEnumsMatchTheLoader: every enum of the schema (role, standby,
// standbyHooks, rollout, onFailure, and any added later) holds exactly the
// values the loader accepts, so an editor never offers a value tandem
// refuses nor flags one it takes. Three sides must agree: the schema's
// enum, the constants of the field's Go type, and the loader itself —
// each schema value loads, and an unknown value is refused at that field
// with a message listing the same values. A change to any one side alone
// fails here.
func TestSchemaEnumsMatchTheLoader(t *testing.T) {
	consts := typedConstants(t)
	type enumField struct {
		path   string
		typ    string
		values []string
	}
	var enums []enumField
	walkSchema(t, func(path string, typ reflect.Type, node map[string]any) {
		raw, ok := node["enum"].([]any)
		if !ok {
			if typ.Kind() == reflect.String && len(consts[typ.Name()]) > 0 {
				t.Errorf("schema %s: the loader's type %s has constants %v but the schema has no enum", path, typ.Name(), consts[typ.Name()])
			}
			return
		}
		var values []string
		for _, v := range raw {
			s, ok := v.(string)
			if !ok {
				t.Errorf("schema %s: enum value %v is not a string", path, v)
			}
			values = append(values, s)
		}
		sort.Strings(values)
		enums = append(enums, enumField{path: strings.TrimPrefix(path, "tandem.yaml."), typ: typ.Name(), values: values})
	})
	if len(enums) < 5 {
		t.Fatalf("found only these enums in the schema: %v", enums)
	}

	const head = "clusters:\n  - name: blue\n    role: active\n  - name: green\n    role: standby\n"
	const release = "releases:\n  - name: web\n    namespace: shop\n    chart: ./charts/web\n"
	// with is the manifest with the enum field set to v, and the path of
	// that field as the loader names it.
	with := func(path, v string) (string, string) {
		switch {
		case strings.HasPrefix(path, "clusters[]."):
			field := strings.TrimPrefix(path, "clusters[].")
			return strings.Replace(head, "    role: standby\n", fieldLine(field, v, "standby"), 1) + release, "clusters[1]." + field
		case strings.HasPrefix(path, "releases[]."):
			field := strings.TrimPrefix(path, "releases[].")
			return head + release + "    " + field + ": " + strconv.Quote(v) + "\n", "releases[0]." + field
		}
		t.Fatalf("no probe for the enum at %s: teach this test where it lives", path)
		return "", ""
	}
	for _, e := range enums {
		t.Run(e.path, func(t *testing.T) {
			if got := consts[e.typ]; !reflect.DeepEqual(got, e.values) {
				t.Errorf("schema enum %v, constants of %s %v", e.values, e.typ, got)
			}
			for _, v := range e.values {
				doc, _ := with(e.path, v)
				if _, err := Load(newRepoWith(t, doc), LoadOptions{}); err != nil {
					t.Errorf("the schema allows %s: %q, which the loader refuses: %v", e.path, v, err)
				}
			}
			doc, field := with(e.path, "no-such-value")
			_, err := Load(newRepoWith(t, doc), LoadOptions{})
			if err == nil {
				t.Fatalf("the loader accepts %s: no-such-value", e.path)
			}
			var msg string
			for _, p := range problems(t, err) {
				if p.Field == field {
					msg = p.Message
				}
			}
			_, list, ok := strings.Cut(msg, "must be ")
			if !ok {
				t.Fatalf("no problem at %s that lists the accepted values: %v", field, err)
			}
			accepted := strings.FieldsFunc(strings.ReplaceAll(list, " or ", ","), func(r rune) bool { return r == ',' || r == ' ' })
			sort.Strings(accepted)
			if !reflect.DeepEqual(accepted, e.values) {
				t.Errorf("the loader says %s must be %v; the schema's enum is %v", field, accepted, e.values)
			}
		})
	}
}

// fieldLine is the YAML line setting field to v in a cluster entry; the
// role line it replaces is kept unless field is role.
func fieldLine(field, v, role string) string {
	if field == "role" {
		return "    role: " + strconv.Quote(v) + "\n"
	}
	return "    role: " + role + "\n    " + field + ": " + strconv.Quote(v) + "\n"
}

// typedConstants reads the package's Go source and returns, per named type,
// the sorted string values of the constants declared with that type.
func typedConstants(t *testing.T) map[string][]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				id, ok := vs.Type.(*ast.Ident)
				if !ok {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Errorf("%s: a constant of type %s that is not a string literal", fset.Position(v.Pos()), id.Name)
						continue
					}
					s, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					out[id.Name] = append(out[id.Name], s)
				}
			}
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}
