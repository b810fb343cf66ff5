package render

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
)

// codecValues has every type the codec carries, with nil and empty apart.
func codecValues() map[string]any {
	return map[string]any{
		"nil": nil, "true": true, "false": false, "string": "s", "empty": "",
		"int": 1, "int8": int8(-8), "int16": int16(-16), "int32": int32(-32), "int64": int64(-1 << 62),
		"uint": uint(1), "uint8": uint8(8), "uint16": uint16(16), "uint32": uint32(32), "uint64": uint64(1 << 63),
		"float32": float32(1.5), "float64": 1e21, "million": float64(1000000), "number": json.Number("12.50"),
		"map":    map[string]any{"a": []any{1, "x", map[string]any{}}},
		"nilMap": map[string]any(nil), "emptyMap": map[string]any{},
		"values":  chartutil.Values{"x": int64(1)},
		"list":    []any{nil, []any{}, []any(nil)},
		"nilList": []any(nil), "emptyList": []any{},
		"strings": []string{"a", ""}, "nilStrings": []string(nil),
		"stringMap": map[string]string{"a": "b"}, "nilStringMap": map[string]string(nil),
		"maps": []map[string]any{{"a": 1}, nil},
	}
}

func TestWorkerCodecValuesRoundTrip(t *testing.T) {
	in := codecValues()
	e := &encoder{}
	e.value(in)
	if e.err != nil {
		t.Fatal(e.err)
	}
	d := &decoder{buf: e.buf}
	got := d.value()
	if err := d.finish(); err != nil {
		t.Fatal(err)
	}
	// cmp tells nil from empty, and int64(1) from float64(1).
	if diff := cmp.Diff(any(in), got); diff != "" {
		t.Errorf("(-sent +received):\n%s", diff)
	}
}

func TestWorkerCodecRefusesUnknownTypes(t *testing.T) {
	for _, v := range []any{struct{}{}, time.Now(), []int{1}, map[string]int{}} {
		e := &encoder{}
		e.value(map[string]any{"k": []any{v}})
		if e.err == nil || !strings.Contains(e.err.Error(), reflect.TypeOf(v).String()) {
			t.Errorf("%T: got %v, want an error naming the type", v, e.err)
		}
	}
}

// fill sets every exported field of v (by reflection) to a value that is
// not its zero value, so that a field the codec leaves out, such as one a
// Helm upgrade adds to chart.Metadata, fails the round trip.
func fill(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString("value of " + path)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), path)
	case reflect.Slice:
		switch el := v.Type().Elem(); el.Kind() {
		case reflect.String:
			v.Set(reflect.ValueOf([]string{"a of " + path, ""}).Convert(v.Type()))
		case reflect.Interface: // Dependency.ImportValues: strings and child/parent maps
			v.Set(reflect.ValueOf([]any{"data", map[string]any{"child": "c", "parent": "p"}}))
		case reflect.Pointer:
			s := reflect.MakeSlice(v.Type(), 2, 2) // a filled element and a nil one
			fill(t, s.Index(0), path+"[0]")
			v.Set(s)
		default:
			t.Fatalf("%s: no filler for a slice of %s", path, el)
		}
	case reflect.Map:
		if v.Type() != reflect.TypeOf(map[string]string{}) {
			t.Fatalf("%s: no filler for %s", path, v.Type())
		}
		v.Set(reflect.ValueOf(map[string]string{"key": "value of " + path}))
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2024, 5, 6, 7, 8, 9, 10, time.FixedZone("x", 3600))))
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				t.Fatalf("%s.%s: unexported field", path, f.Name)
			}
			fill(t, v.Field(i), path+"."+f.Name)
		}
	default:
		t.Fatalf("%s: no filler for %s", path, v.Kind())
	}
}

func TestWorkerCodecChartRoundTrip(t *testing.T) {
	md, lock := &chart.Metadata{}, &chart.Lock{}
	fill(t, reflect.ValueOf(md).Elem(), "Metadata")
	fill(t, reflect.ValueOf(lock).Elem(), "Lock")
	top := &chart.Chart{
		Raw:       []*chart.File{{Name: "Chart.yaml", Data: []byte("raw")}},
		Metadata:  md,
		Lock:      lock,
		Templates: []*chart.File{{Name: "templates/a.yaml", Data: []byte("a: {{ .Values.a }}")}, {Name: "templates/empty.yaml", Data: []byte{}}, nil},
		Values:    codecValues(),
		Schema:    []byte(`{"type": "object"}`),
		Files:     []*chart.File{{Name: "README.md", Data: nil}},
	}
	sub := &chart.Chart{Metadata: &chart.Metadata{Name: "sub", Keywords: []string{}}, Values: map[string]any{}}
	subsub := &chart.Chart{Metadata: &chart.Metadata{Name: "subsub"}}
	sub.SetDependencies(subsub)
	top.SetDependencies(sub)

	e := &encoder{}
	e.chart(top)
	if e.err != nil {
		t.Fatal(e.err)
	}
	d := &decoder{buf: e.buf}
	got := d.chart()
	if err := d.finish(); err != nil {
		t.Fatal(err)
	}
	opts := []cmp.Option{cmpopts.IgnoreUnexported(chart.Chart{}), cmpopts.IgnoreFields(chart.Chart{}, "Raw")}
	var check func(path string, want, got *chart.Chart)
	check = func(path string, want, got *chart.Chart) {
		if diff := cmp.Diff(want, got, opts...); diff != "" {
			t.Errorf("%s (-sent +received):\n%s", path, diff)
		}
		if len(want.Dependencies()) != len(got.Dependencies()) {
			t.Fatalf("%s: %d dependencies, want %d", path, len(got.Dependencies()), len(want.Dependencies()))
		}
		for i, dep := range got.Dependencies() {
			if dep.Parent() != got {
				t.Errorf("%s: dependency %d does not point at its parent", path, i)
			}
			check(path+"/"+dep.Name(), want.Dependencies()[i], dep)
		}
	}
	check("chart", top, got)
	if got.Raw != nil {
		t.Error("Raw was sent: nothing in a render reads it")
	}
}

// renderRequestBody is a whole msgRender body, as workerPool.template
// builds it.
func renderRequestBody(t testing.TB) []byte {
	ch := &chart.Chart{Metadata: &chart.Metadata{Name: "c", Version: "1.0.0", APIVersion: "v2"},
		Templates: []*chart.File{{Name: "templates/cm.yaml", Data: []byte("kind: ConfigMap")}}, Values: codecValues()}
	e := &encoder{}
	e.uvarint(7)
	e.chart(ch)
	rest, err := (&renderJob{release: "r", namespace: "ns", caps: Capabilities{KubeVersion: "1.30", APIVersions: []string{"v1"}},
		overlay: Overlay{Release: "r", Cluster: "blue", Role: RoleActive, ActiveWeight: 100, RunStandbyHooks: true,
			Knobs: &Knobs{ScaleDown: true, SuspendCronJobs: true, Weight: 7}}, values: codecValues(), lookup: true}).encodeRest()
	if err != nil || e.err != nil {
		t.Fatal(err, e.err)
	}
	e.buf = append(e.buf, rest...)
	e.bool(true)       // alsoUpgrade
	e.uvarint(1 << 20) // maxAnswer
	e.varint(int64(3 * time.Second))
	return e.buf
}

// TestWorkerDecoderRejectsGarbage: a truncated or corrupted request is an
// error, never a panic or a huge allocation.
func TestWorkerDecoderRejectsGarbage(t *testing.T) {
	body := renderRequestBody(t)
	j, err := decodeRenderJob(body)
	if err != nil {
		t.Fatal(err)
	}
	if j.chartID != 7 || j.chart.Name() != "c" || j.overlay.ActiveWeight != 100 || !j.lookup || !j.alsoUpgrade || j.maxAnswer != 1<<20 || j.within != 3*time.Second {
		t.Fatalf("decoded %+v", j)
	}
	// Every overlay field crosses to the worker: a switchover's knobs
	// dropped there rendered the daemon's phases as plain role renders.
	if k := j.overlay.Knobs; !j.overlay.RunStandbyHooks || k == nil || !k.ScaleDown || !k.SuspendCronJobs || k.Weight != 7 {
		t.Fatalf("overlay decoded as %+v, knobs %+v", j.overlay, k)
	}
	for n := range len(body) {
		if _, err := decodeRenderJob(body[:n]); err == nil {
			t.Fatalf("a request cut at %d of %d bytes decoded", n, len(body))
		}
	}
	if _, err := decodeRenderJob(append(body, 0)); err == nil || !strings.Contains(err.Error(), "left over") {
		t.Errorf("trailing byte: %v", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := append([]byte(nil), body...)
		for range 1 + rng.IntN(4) {
			b[rng.IntN(len(b))] = byte(rng.IntN(256))
		}
		_, _ = decodeRenderJob(b) // must not panic
		_, _ = decodeLookupReply(b)
		_, _ = decodeAnswer(b)
	}
	// A length claiming more than the frame holds is refused before allocation.
	huge := append([]byte{7, 1, 1}, 0xff, 0xff, 0xff, 0xff, 0x0f)
	if _, err := decodeRenderJob(huge); err == nil {
		t.Error("a huge claimed length decoded")
	}
}

func FuzzDecodeRenderJob(f *testing.F) {
	f.Add(renderRequestBody(f))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeRenderJob(b)
		_, _ = decodeLookupCall(b)
		_, _ = decodeLookupReply(b)
		_, _ = decodeAnswer(b)
	})
}
