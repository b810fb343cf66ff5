package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// decoder turns tandem.yaml into a Manifest by walking yaml.v3 nodes against the Go types'
// json tags. Doing it by hand rather than with yaml.UnmarshalStrict gives every problem a
// line, reports all of them instead of the first, and keeps YAML 1.2 scalars: `namespace: no`
// stays a string instead of turning into false.
type decoder struct {
	file        string
	maxProblems int
	problems    []Problem
	dropped     int
	// lines maps a field path (releases[2].needs[0]) to the line it is on.
	lines map[string]int
	// failed holds the paths the decoder already complained about, so that validation
	// does not add "must be set" to "must be a string".
	failed map[string]bool
}

func newDecoder(file string, maxProblems int) *decoder {
	return &decoder{file: file, maxProblems: maxProblems, lines: map[string]int{}, failed: map[string]bool{}}
}

// add records a problem at a field whose line is known.
func (d *decoder) add(field string, line int, format string, args ...any) {
	d.addProblem(Problem{File: d.file, Field: field, Line: line, Message: fmt.Sprintf(format, args...)})
}

// addProblem records a problem, up to maxProblems of them.
func (d *decoder) addProblem(p Problem) {
	if len(d.problems) >= d.maxProblems {
		d.dropped++
		return
	}
	d.problems = append(d.problems, p)
}

// fail records a decoding problem and marks the field so validation leaves it alone.
func (d *decoder) fail(field string, line int, format string, args ...any) {
	d.failed[field] = true
	d.add(field, line, format, args...)
}

// addAt records a validation problem, looking the line up from the field path, unless the
// decoder already reported this field or one that holds it.
func (d *decoder) addAt(field string, format string, args ...any) {
	for p := field; p != ""; p = parentPath(p) {
		if d.failed[p] {
			return
		}
	}
	d.add(field, d.lineOf(field), format, args...)
}

// lineOf returns the line of a field path, or of the nearest enclosing field that has one.
func (d *decoder) lineOf(field string) int {
	for p := field; p != ""; p = parentPath(p) {
		if l, ok := d.lines[p]; ok {
			return l
		}
	}
	return 0
}

// result returns the problems found, sorted by line (unknown lines last), or nil.
func (d *decoder) result() error {
	if len(d.problems) == 0 {
		return nil
	}
	ps := append([]Problem(nil), d.problems...)
	// tandem.yaml first, then the values files it names; by line in each, unknown lines last.
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.File == d.file) != (b.File == d.file) {
			return a.File == d.file
		}
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line == 0 || b.Line == 0 {
			return a.Line != 0 && b.Line == 0
		}
		return a.Line < b.Line
	})
	if d.dropped > 0 {
		ps = append(ps, Problem{File: d.file, Message: fmt.Sprintf("%d more problems not listed", d.dropped)})
	}
	return &ValidationError{Problems: ps}
}

// parentPath strips the last segment of a field path: a.b[2] -> a.b -> a -> "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

func fieldPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// keyPath names a map entry: releases[0].clusters.green, or set["image.tag"] when the key
// would be ambiguous after a dot.
func keyPath(parent, key string) string {
	if plainKey.MatchString(key) {
		return fieldPath(parent, key)
	}
	return fmt.Sprintf("%s[%q]", parent, key)
}

func indexPath(parent string, i int) string { return fmt.Sprintf("%s[%d]", parent, i) }

const msgEmpty = "file is empty"

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse reads the single YAML document in data. A syntax error or a second document is a problem.
func (d *decoder) parse(data []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.add("", 0, msgEmpty)
			return nil, false
		}
		d.addYAMLError(err)
		return nil, false
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.addYAMLError(err)
		return nil, false
	default:
		d.add("", next.Line, "more than one YAML document: the file must hold exactly one")
		return nil, false
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			d.add("", 0, msgEmpty)
			return nil, false
		}
		root = root.Content[0]
	}
	return root, true
}

func (d *decoder) addYAMLError(err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		d.add("", line, "invalid YAML: %s", m[2])
		return
	}
	d.add("", 0, "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// checkSize counts root's nodes with every alias expanded and reports a document that
// expands past limit (a "billion laughs" bomb) or holds an alias to a node containing it.
// Counting is memoized per node, so it is linear in the document whatever the expansion.
func (d *decoder) checkSize(root *yaml.Node, limit int) bool {
	s := sizer{memo: map[*yaml.Node]int{}, active: map[*yaml.Node]bool{}, limit: limit}
	n := s.size(root)
	if s.cycle != nil {
		d.add("", s.cycle.Line, "alias *%s refers to a node that contains it", s.cycle.Value)
		return false
	}
	if n > limit {
		d.add("", 0, "document has more than %d YAML nodes once aliases are expanded", limit)
		return false
	}
	return true
}

type sizer struct {
	memo   map[*yaml.Node]int
	active map[*yaml.Node]bool
	limit  int
	cycle  *yaml.Node
}

func (s *sizer) size(n *yaml.Node) int {
	if v, ok := s.memo[n]; ok {
		return v
	}
	if s.cycle != nil {
		return s.limit + 1
	}
	if s.active[n] {
		return s.limit + 1
	}
	s.active[n] = true
	defer delete(s.active, n)
	total := 1
	if n.Kind == yaml.AliasNode {
		if n.Alias != nil {
			if s.active[n.Alias] {
				s.cycle = n
				return s.limit + 1
			}
			total += s.size(n.Alias)
		}
	} else {
		for _, c := range n.Content {
			total += s.size(c)
			if total > s.limit {
				break
			}
		}
	}
	if total > s.limit {
		total = s.limit + 1
	}
	s.memo[n] = total
	return total
}

const (
	tagStr   = "!!str"
	tagInt   = "!!int"
	tagFloat = "!!float"
	tagBool  = "!!bool"
	tagNull  = "!!null"
	tagMerge = "!!merge"
)

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == tagNull }

// describe names what a node holds, for "must be a string, got ..." messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case tagInt:
			return "the integer " + n.Value
		case tagFloat:
			return "the number " + n.Value
		case tagBool:
			return "the boolean " + n.Value
		case tagStr:
			return strconv.Quote(n.Value)
		default:
			return fmt.Sprintf("%s %q", n.ShortTag(), n.Value)
		}
	}
	return "nothing"
}

// decode sets v from n, recording a problem for every node that does not fit v's type.
func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	n = resolveAlias(n)
	if isNull(n) {
		return // leave the zero value; validation says whether the field was required
	}
	switch v.Kind() {
	case reflect.Pointer:
		// An optional field whose omission differs from its zero value
		// (dns.drainSeconds: 0 is a choice, absent is the default).
		p := reflect.New(v.Type().Elem())
		d.decode(path, n, p.Elem())
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(path, n, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n.Line, "must be a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			p := indexPath(path, i)
			d.lines[p] = c.Line
			d.decode(p, c, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		d.decodeMap(path, n, v)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(path, n.Line, "must be a string, got %s", describe(n))
			return
		}
		if n.ShortTag() != tagStr {
			d.fail(path, n.Line, "must be a string, got %s (quote it if it is meant as a string)", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != tagInt || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.fail(path, n.Line, "must be an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != tagBool || n.Decode(&b) != nil {
			d.fail(path, n.Line, "must be true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Interface:
		val, ok := scalarValue(n)
		if !ok {
			d.fail(path, n.Line, "must be a string, number, boolean or null, got %s", describe(n))
			return
		}
		v.Set(reflect.ValueOf(val))
	default:
		// Unreachable for the manifest's types; a new field type needs a case above.
		d.fail(path, n.Line, "cannot decode into %s", v.Type())
	}
}

// scalarValue converts a scalar for a `set` entry: strings stay strings, integers become
// int64 and other numbers float64, as Helm's --set parser would type them.
func scalarValue(n *yaml.Node) (any, bool) {
	if n.Kind != yaml.ScalarNode {
		return nil, false
	}
	switch n.ShortTag() {
	case tagStr, "!!timestamp":
		return n.Value, true
	case tagInt:
		var i int64
		if err := n.Decode(&i); err != nil {
			return nil, false
		}
		return i, true
	case tagFloat:
		var f float64
		if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, false
		}
		return f, true
	case tagBool:
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, false
		}
		return b, true
	}
	return nil, false
}

type pair struct{ key, value *yaml.Node }

// maxMergeDepth bounds nested merge keys (<<: *a where a itself merges).
const maxMergeDepth = 16

// pairs lists a mapping's entries with YAML merge keys (<<) folded in: explicit keys win over
// merged ones, and earlier merged mappings over later ones.
func (d *decoder) pairs(path string, n *yaml.Node, depth int) []pair {
	var explicit, merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != tagMerge {
			explicit = append(explicit, pair{k, val})
			continue
		}
		if depth >= maxMergeDepth {
			d.fail(path, k.Line, "merge keys nested more than %d deep", maxMergeDepth)
			continue
		}
		val = resolveAlias(val)
		sources := []*yaml.Node{val}
		if val.Kind == yaml.SequenceNode {
			sources = val.Content
		}
		for _, src := range sources {
			src = resolveAlias(src)
			if src.Kind != yaml.MappingNode {
				d.fail(path, k.Line, "a merge key (<<) must refer to a mapping or a list of mappings, got %s", describe(src))
				continue
			}
			merged = append(merged, d.pairs(path, src, depth+1)...)
		}
	}
	if len(merged) == 0 {
		return explicit
	}
	have := map[string]bool{}
	for _, p := range explicit {
		have[p.key.Value] = true
	}
	out := explicit
	for _, p := range merged {
		if !have[p.key.Value] {
			have[p.key.Value] = true
			out = append(out, p)
		}
	}
	return out
}

// jsonFields maps a struct's json names to field indexes; fields tagged "-" are not decoded.
func jsonFields(t reflect.Type) (map[string]int, []string) {
	fields := map[string]int{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = i
		names = append(names, name)
	}
	return fields, names
}

func (d *decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "must be a mapping, got %s", describe(n))
		return
	}
	fields, names := jsonFields(v.Type())
	seen := map[string]int{}
	for _, p := range d.pairs(path, n, 0) {
		k := resolveAlias(p.key)
		if k.Kind != yaml.ScalarNode {
			d.fail(path, k.Line, "keys must be strings, got %s", describe(k))
			continue
		}
		key := k.Value
		fp := fieldPath(path, key)
		if first, dup := seen[key]; dup {
			d.fail(fp, k.Line, "duplicate key %q (first on line %d)", key, first)
			continue
		}
		seen[key] = k.Line
		i, ok := fields[key]
		if !ok {
			d.fail(fp, k.Line, "unknown field %q%s", key, suggest(key, names))
			continue
		}
		d.lines[fp] = k.Line
		d.decode(fp, p.value, v.Field(i))
	}
}

// suggest offers the field a misspelt key most likely meant.
func suggest(key string, names []string) string {
	norm := strings.NewReplacer("-", "", "_", "")
	for _, n := range names {
		if strings.EqualFold(norm.Replace(n), norm.Replace(key)) {
			return fmt.Sprintf("; did you mean %q?", n)
		}
	}
	return fmt.Sprintf(" (known fields: %s)", strings.Join(names, ", "))
}

func (d *decoder) decodeMap(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "must be a mapping, got %s", describe(n))
		return
	}
	ps := d.pairs(path, n, 0)
	m := reflect.MakeMapWithSize(v.Type(), len(ps))
	seen := map[string]int{}
	for _, p := range ps {
		k := resolveAlias(p.key)
		if k.Kind != yaml.ScalarNode {
			d.fail(path, k.Line, "keys must be strings, got %s", describe(k))
			continue
		}
		key := k.Value
		kp := keyPath(path, key)
		if first, dup := seen[key]; dup {
			d.fail(kp, k.Line, "duplicate key %q (first on line %d)", key, first)
			continue
		}
		seen[key] = k.Line
		d.lines[kp] = k.Line
		ev := reflect.New(v.Type().Elem()).Elem()
		d.decode(kp, p.value, ev)
		m.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), ev)
	}
	v.Set(m)
}
