package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"sigs.k8s.io/yaml"
)

// Generated is one object's fields that a chart generates afresh at every
// render (randAlphaNum, uuidv4, now, genCA, bcrypt …): the fields two renders
// of the same request disagree on.
type Generated struct {
	// Object is the object's identity, as Planned compares it: "source:
	// apiVersion Kind namespace/name".
	Object string `json:"object"`
	// Paths are RFC 6901 JSON pointers to the fields that differed.
	Paths []string `json:"paths"`
}

// generatingFuncs are the template functions whose output differs from one
// render to the next. A chart whose templates name none of them renders the
// same every time and is rendered once. Sprig's date functions are among
// them: date, dateInZone (date_in_zone), htmlDate and htmlDateInZone print
// the current time when their date is neither a time nor an integer (an
// unset value, a string, a number from values.yaml, Helm 2's
// .Release.Time), and durationRound of a time is the time since it.
var generatingFuncs = regexp.MustCompile(`\b(randAlphaNum|randAlpha|randAscii|randNumeric|randBytes|randInt|shuffle|uuidv4|now|genCA|genCAWithKey|genPrivateKey|genSelfSignedCert|genSelfSignedCertWithKey|genSignedCert|genSignedCertWithKey|bcrypt|htpasswd|encryptAES|ago|date|dateInZone|date_in_zone|htmlDate|htmlDateInZone|durationRound)\b`)

// generatingStems are substrings every match of generatingFuncs contains:
// a text with none of them cannot match, and is told so without the
// regexp (which costs a hundred times more on a large chart). "date" counts
// only at the start of a word (not in update, validate: most charts have
// an updateStrategy).
var generatingStems = [][]byte{[]byte("rand"), []byte("shuffle"), []byte("uuidv4"), []byte("now"), []byte("gen"),
	[]byte("crypt"), []byte("htpasswd"), []byte("ago"), []byte("htmlDate"), []byte("durationRound")}

// namesGenerating reports whether b names a generating function.
func namesGenerating(b []byte) bool {
	for _, s := range generatingStems {
		if bytes.Contains(b, s) {
			return generatingFuncs.Match(b)
		}
	}
	for rest, i := b, 0; ; rest = rest[i+4:] {
		if i = bytes.Index(rest, []byte("date")); i < 0 {
			return false
		}
		if i == 0 && len(rest) == len(b) || i > 0 && !isWordByte(rest[i-1]) {
			return generatingFuncs.Match(b)
		}
	}
}

// isWordByte is regexp's \w, for an ASCII byte.
func isWordByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// mayGenerate reports whether a template of ch or of a subchart calls a
// generating function.
func mayGenerate(ch *chart.Chart) bool {
	for _, t := range ch.Templates {
		if namesGenerating(t.Data) {
			return true
		}
	}
	for _, d := range ch.Dependencies() {
		if mayGenerate(d) {
			return true
		}
	}
	return false
}

// generated renders req without lookup (twice, or once more when req has
// no lookup and first is such a render) and returns the fields the renders
// disagree on.
func (r *Renderer) generated(ctx context.Context, req Request, ch *chart.Chart, vals map[string]any, pool *workerPool, objs, hooks []Object) ([]Generated, error) {
	renderOnce := func() ([]Object, []Object, error) {
		plain := req
		plain.Lookup = nil
		o, err := r.templateWithin(ctx, plain, ch, vals, pool)
		if err != nil {
			return nil, nil, err
		}
		m, err := ParseObjects(o.manifest, req.Namespace)
		if err != nil {
			return nil, nil, err
		}
		h, err := ParseObjects(o.hooks, req.Namespace)
		if err != nil {
			return nil, nil, fmt.Errorf("hooks: %w", err)
		}
		return m, h, nil
	}
	if req.Lookup != nil {
		var err error
		if objs, hooks, err = renderOnce(); err != nil {
			return nil, err
		}
	}
	objs2, hooks2, err := renderOnce()
	if err != nil {
		return nil, err
	}
	g1, ok1 := generatedFields(objs, objs2)
	g2, ok2 := generatedFields(hooks, hooks2)
	if !ok1 || !ok2 {
		return nil, nil
	}
	return append(g1, g2...), nil
}

// generatedFields compares two renders of one request, object by object, and
// returns the fields they disagree on. ok is false when the renders do not
// hold the same objects (a generated name): then nothing can be kept.
func generatedFields(a, b []Object) (out []Generated, ok bool) {
	if len(a) != len(b) {
		return nil, false
	}
	for i := range a {
		if objectIdentity(a[i]) != objectIdentity(b[i]) {
			return nil, false
		}
		if string(a[i].Body) == string(b[i].Body) {
			continue
		}
		var x, y map[string]any
		if yaml.Unmarshal(a[i].Body, &x) != nil || yaml.Unmarshal(b[i].Body, &y) != nil {
			return nil, false
		}
		var differ, paths []string
		differingLeaves("", x, y, &differ)
		for _, p := range differ {
			if mayBeGenerated(a[i].APIVersion, a[i].Kind, p) {
				paths = append(paths, p)
			}
		}
		if len(paths) > 0 {
			slices.Sort(paths)
			out = append(out, Generated{Object: objectIdentity(a[i]), Paths: paths})
		}
	}
	return out, true
}

// mayBeGenerated says whether the field at ptr of an object of this kind may
// be treated as generated (the cluster's, kept from the deployed revision and
// left out of the digest and of diff --against) when two renders disagree on
// it: a Secret's values, a webhook's or APIService's caBundle (a chart
// generating a CA with genCA), and annotations whose key has no prefix or
// the checksum/ prefix, on the object or its pod template (no controller acts
// on those). Anything else that varies — replicas, images, commands, a
// CronJob's suspend, RBAC rules, a controller's annotation — stays in the
// digest and the plan as rendered: a chart cannot make a change there
// invisible, nor have a Standby's replicas 0 or suspend carried into an
// Active's plan, by making the field look generated.
func mayBeGenerated(apiVersion, kind, ptr string) bool {
	toks := strings.Split(ptr, "/")[1:]
	for i := range toks {
		toks[i] = unescapePointer(toks[i])
	}
	group := ""
	if i := strings.LastIndex(apiVersion, "/"); i >= 0 {
		group = apiVersion[:i]
	}
	switch {
	case kind == "Secret" && group == "" && len(toks) == 2 && (toks[0] == "data" || toks[0] == "stringData"):
		return true
	case group == "admissionregistration.k8s.io" && (kind == "MutatingWebhookConfiguration" || kind == "ValidatingWebhookConfiguration") &&
		len(toks) == 4 && toks[0] == "webhooks" && toks[2] == "clientConfig" && toks[3] == "caBundle":
		_, err := strconv.Atoi(toks[1])
		return err == nil
	case group == "apiregistration.k8s.io" && kind == "APIService" && len(toks) == 2 && toks[0] == "spec" && toks[1] == "caBundle":
		return true
	}
	n := len(toks)
	if n < 3 || toks[n-3] != "metadata" || toks[n-2] != "annotations" {
		return false
	}
	if key := toks[n-1]; strings.Contains(key, "/") && !strings.HasPrefix(key, "checksum/") {
		return false
	}
	switch strings.Join(toks[:n-3], "/") {
	case "", "spec/template", "spec/jobTemplate/spec/template":
		return true
	}
	return false
}

// objectIdentity names an object as Planned compares objects.
func objectIdentity(o Object) string { return o.Identity() }

// Identity names the object as Planned and Generated do: "source:
// apiVersion Kind namespace/name".
func (o Object) Identity() string {
	return o.Source + ": " + o.APIVersion + " " + o.ID()
}

// differingLeaves appends the JSON pointers under prefix where x and y differ.
func differingLeaves(prefix string, x, y any, out *[]string) {
	switch xv := x.(type) {
	case map[string]any:
		yv, ok := y.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range xv {
			keys[k] = true
		}
		for k := range yv {
			keys[k] = true
		}
		for k := range keys {
			differingLeaves(prefix+"/"+escapePointer(k), xv[k], yv[k], out)
		}
		return
	case []any:
		yv, ok := y.([]any)
		if !ok || len(xv) != len(yv) {
			break
		}
		for i := range xv {
			differingLeaves(prefix+"/"+strconv.Itoa(i), xv[i], yv[i], out)
		}
		return
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	if string(xb) != string(yb) {
		*out = append(*out, prefix)
	}
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func unescapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}

// generatedPlaceholder stands for a generated value in the digest.
const generatedPlaceholder = "(generated)"

// stableDigest is digest with every generated field replaced by a
// placeholder, so that a release whose chart generates a password digests the
// same at every render of the same chart and values, and its re-runs are
// no-ops. Without generated fields it is digest.
func stableDigest(r *Result) (string, error) {
	if len(r.Generated) == 0 {
		return digest(r), nil
	}
	paths := map[string][]string{}
	for _, g := range r.Generated {
		paths[g.Object] = g.Paths
	}
	var b strings.Builder
	for _, objs := range [][]Object{r.Objects, r.HookObjects} {
		for _, o := range objs {
			p := paths[objectIdentity(o)]
			if len(p) == 0 {
				fmt.Fprintf(&b, "%s\n%s\n", objectIdentity(o), o.Body)
				continue
			}
			var m map[string]any
			if err := yaml.Unmarshal(o.Body, &m); err != nil {
				return "", fmt.Errorf("%s: %w", o.ID(), err)
			}
			for _, ptr := range p {
				setPointer(m, ptr, generatedPlaceholder)
			}
			j, err := json.Marshal(m)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "%s\n%s\n", objectIdentity(o), j)
		}
	}
	vals, _ := json.Marshal(r.Values)
	h := sha256.New()
	for _, s := range []string{"stable", r.Namespace, r.ChartName, r.ChartVersion, string(vals), b.String()} {
		fmt.Fprintf(h, "%d:%s\n", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))[:40], nil
}

// getPointer returns the value at ptr in obj.
func getPointer(obj any, ptr string) (any, bool) {
	cur := obj
	for _, tok := range strings.Split(ptr, "/")[1:] {
		tok = unescapePointer(tok)
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// HasField says whether obj (an object as JSON) has a field at the RFC 6901
// JSON pointer ptr.
func HasField(obj map[string]any, ptr string) bool {
	_, ok := getPointer(obj, ptr)
	return ok
}

// setPointer sets the value at ptr in obj when its parent exists.
func setPointer(obj any, ptr string, v any) bool {
	toks := strings.Split(ptr, "/")[1:]
	if len(toks) == 0 {
		return false
	}
	parent, ok := getPointer(obj, "/"+strings.Join(toks[:len(toks)-1], "/"))
	if len(toks) == 1 {
		parent, ok = obj, true
	}
	if !ok {
		return false
	}
	last := unescapePointer(toks[len(toks)-1])
	switch p := parent.(type) {
	case map[string]any:
		p[last] = v
		return true
	case []any:
		i, err := strconv.Atoi(last)
		if err != nil || i < 0 || i >= len(p) {
			return false
		}
		p[i] = v
		return true
	}
	return false
}

// KeepGenerated puts back, into r's planned manifest and objects, the value
// each generated field has in deployed (the manifest Helm storage holds for
// the release's deployed revision, which is what tandem applied): a password
// the chart generated at the first install stays what it was, through
// upgrades and drift correction. A field deployed does not have (a new
// object, a new key) keeps its fresh value. It returns how many fields were
// kept. The digest is unchanged: generated fields are not in it.
func (r *Result) KeepGenerated(deployed string) (int, error) {
	if len(r.Generated) == 0 || deployed == "" {
		return 0, nil
	}
	old, err := ParseObjects(deployed, r.Namespace)
	if err != nil {
		return 0, fmt.Errorf("deployed manifest: %w", err)
	}
	oldBy := map[string]Object{}
	for _, o := range old {
		oldBy[objectIdentity(o)] = o
	}
	docs, err := splitDocuments([]byte(r.Manifest))
	if err != nil || len(docs) != len(r.Objects) {
		return 0, err // a List flattened into several objects: not kept (a known limit)
	}
	paths := map[string][]string{}
	for _, g := range r.Generated {
		paths[g.Object] = g.Paths
	}
	kept := 0
	objs := slices.Clone(r.Objects)
	for i, o := range objs {
		p, prev := paths[objectIdentity(o)], oldBy[objectIdentity(o)]
		if len(p) == 0 || prev.Body == nil {
			continue
		}
		var cur, was map[string]any
		if err := yaml.Unmarshal(o.Body, &cur); err != nil {
			return 0, fmt.Errorf("%s: %w", o.ID(), err)
		}
		if err := yaml.Unmarshal(prev.Body, &was); err != nil {
			return 0, fmt.Errorf("deployed %s: %w", o.ID(), err)
		}
		n := 0
		for _, ptr := range p {
			if v, ok := getPointer(was, ptr); ok && setPointer(cur, ptr, v) {
				n++
			}
		}
		if n == 0 {
			continue
		}
		body, err := yaml.Marshal(cur)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", o.ID(), err)
		}
		objs[i].Body = []byte("# Source: " + o.Source + "\n" + string(body))
		kept += n
	}
	if kept == 0 {
		return 0, nil
	}
	var b strings.Builder
	for _, o := range objs {
		fmt.Fprintf(&b, "---\n%s\n", strings.TrimRight(string(o.Body), "\n"))
	}
	r.Objects, r.Manifest = objs, b.String()
	return kept, nil
}
