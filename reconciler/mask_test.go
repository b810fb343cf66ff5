package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// Issue 11 item 4: a masked value is a keyed hash under a key random per
// report. Within one report equal values (in data or stringData) mask alike;
// across reports they do not; the plain sha256 of the value, which a short
// password could be brute-forced from, never appears.
func TestSecretMaskKeyedPerReport(t *testing.T) {
	secret := func(field, v string) map[string]any {
		return map[string]any{"apiVersion": "v1", "kind": "Secret", field: map[string]any{"k": v}}
	}
	masked := func(m *SecretMask, field, v string) string {
		obj := secret(field, v)
		m.Mask(obj)
		return obj[field].(map[string]any)["k"].(string)
	}
	one, two := NewSecretMask(), NewSecretMask()
	inData, inString := masked(one, "data", "c2VjcmV0"), masked(one, "stringData", "secret") // base64 "secret"
	if inData != inString {
		t.Errorf("one report: the same value masks differently in data (%s) and stringData (%s)", inData, inString)
	}
	if other := masked(one, "stringData", "secreT"); other == inString {
		t.Errorf("different values mask alike: %s", other)
	}
	if again := masked(two, "stringData", "secret"); again == inString {
		t.Errorf("two reports mask a value alike (%s): the key is not per report", again)
	}
	sum := sha256.Sum256([]byte("secret"))
	if plain := hex.EncodeToString(sum[:])[:10]; strings.Contains(inString, plain) {
		t.Errorf("masked value %q is the plain sha256 of the value", inString)
	}
	if !strings.HasPrefix(inString, "(hidden, hmac ") || strings.Contains(inString, "secret") {
		t.Errorf("masked value %q", inString)
	}

	// data or stringData that is not a map (the API server refuses it) is
	// hidden whole, not printed.
	for _, field := range []string{"data", "stringData"} {
		obj := map[string]any{"apiVersion": "v1", "kind": "Secret", field: "c2VjcmV0"}
		one.Mask(obj)
		if obj[field] != hiddenField {
			t.Errorf("%s as a string: %v, want %s", field, obj[field], hiddenField)
		}
	}
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "data": map[string]any{"k": "visible"}}
	one.Mask(cm)
	if cm["data"].(map[string]any)["k"] != "visible" {
		t.Error("a ConfigMap was masked")
	}
}

// Issue 11 item 4: Secrets a chart wraps in Lists (a v1 List, a SecretList
// whose items have no kind) are masked in `tandem diff --against` like any
// other Secret: the render flattens the Lists, so the diff sees Secrets.
func TestDiffAgainstMasksSecretsInLists(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "render", "testdata", "charts", "list-wrapped-workloads-and-secrets"))
	if err != nil {
		t.Fatal(err)
	}
	req := func(password string) render.Request {
		return render.Request{Cluster: "green", Release: "r", Namespace: "shop", Chart: render.ChartSource{Dir: dir},
			Values:  []render.ValuesLayer{{Source: "set", Set: map[string]any{"password": password}}},
			Overlay: render.Overlay{Release: "r", Cluster: "green", Role: render.RoleStandby, ScaleToZero: true}}
	}
	r := render.New(render.DefaultOptions())
	from, err := r.RenderAll(context.Background(), []render.Request{req("old-wrapped-password")})
	if err != nil {
		t.Fatal(err)
	}
	to, err := r.RenderAll(context.Background(), []render.Request{req("new-wrapped-password")})
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{Clusters: []manifest.Cluster{{Name: "green", Role: manifest.RoleStandby}}}
	rep, err := DiffAgainst(m, from, m, to, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	var ids, all []string
	for _, rd := range rep.Clusters[0].Releases {
		for _, o := range rd.Objects {
			ids = append(ids, o.ID())
			all = append(all, o.Diff)
		}
	}
	text := strings.Join(all, "\n")
	for _, v := range []string{"old-wrapped-password", "new-wrapped-password", "b2xkLXdyYXBwZWQtcGFzc3dvcmQ=", "bmV3LXdyYXBwZWQtcGFzc3dvcmQ="} {
		if strings.Contains(text, v) {
			t.Errorf("Secret value %q appears in the diff:\n%s", v, text)
		}
	}
	if got := strings.Join(ids, ", "); got != "Secret shop/r-kindless, Secret shop/r-wrapped" {
		t.Errorf("changed objects %q, want both wrapped Secrets", got)
	}
	if strings.Count(text, "(hidden, hmac ") != 4 {
		t.Errorf("want 4 masked values (old and new of two Secrets):\n%s", text)
	}
}
