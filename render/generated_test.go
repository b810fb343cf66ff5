package render

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

func generatedRequest(t *testing.T, greeting string) Request {
	dir, err := filepath.Abs(filepath.Join("testdata", "charts", "generated"))
	if err != nil {
		t.Fatal(err)
	}
	return Request{Cluster: "blue", Release: "app", Namespace: "shop", Chart: ChartSource{Dir: dir},
		Values:  []ValuesLayer{{Source: "set", Set: map[string]any{"greeting": greeting}}},
		Overlay: Overlay{Release: "app", Cluster: "blue", Role: RoleActive, DNSPrefix: prefix, ActiveWeight: 100}}
}

func secretPassword(t *testing.T, r *Result) string {
	t.Helper()
	for _, o := range r.Objects {
		if o.Kind == "Secret" {
			var m struct {
				Data map[string]string `json:"data"`
			}
			if err := yaml.Unmarshal(o.Body, &m); err != nil {
				t.Fatal(err)
			}
			return m.Data["password"]
		}
	}
	t.Fatal("no Secret rendered")
	return ""
}

// A chart that generates a password digests the same at every render of the
// same chart and values (its re-runs are no-ops), names the fields that vary,
// and a change elsewhere still changes the digest.
func TestGeneratedFieldsLeaveTheDigest(t *testing.T) {
	r := New(DefaultOptions())
	ctx := context.Background()
	a, err := r.Render(ctx, generatedRequest(t, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Render(ctx, generatedRequest(t, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if secretPassword(t, a) == secretPassword(t, b) {
		t.Fatal("the chart rendered the same password twice; the test needs a generating chart")
	}
	if a.Digest != b.Digest {
		t.Errorf("two renders of the same chart and values digest differently: %s vs %s", a.Digest, b.Digest)
	}
	want := []Generated{ // in install order: the Secret first
		{Object: "generated/templates/secret.yaml: v1 Secret shop/app-auth", Paths: []string{"/data/password"}},
		{Object: "generated/templates/deployment.yaml: apps/v1 Deployment shop/app", Paths: []string{"/spec/template/metadata/annotations/checksum~1secret"}},
	}
	if diff := cmp.Diff(want, a.Generated); diff != "" {
		t.Errorf("generated fields (-want +got):\n%s", diff)
	}
	c, err := r.Render(ctx, generatedRequest(t, "changed"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Digest == a.Digest {
		t.Error("a values change left the digest as it was")
	}

	// The deployed values come back into a later plan: manifest and objects.
	kept, err := c.KeepGenerated(a.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if kept != 2 {
		t.Errorf("kept %d fields, want 2", kept)
	}
	if got, want := secretPassword(t, c), secretPassword(t, a); got != want {
		t.Errorf("password after KeepGenerated %q, want the deployed %q", got, want)
	}
	if !strings.Contains(c.Manifest, secretPassword(t, a)) || !strings.Contains(c.Manifest, `value: changed`) {
		t.Errorf("the planned manifest lacks the kept password or the new value:\n%s", c.Manifest)
	}
	if ids, err := identities(c.Manifest); err != nil || len(ids) != 2 {
		t.Errorf("planned manifest objects %v, %v", ids, err)
	}

	// A deterministic chart is rendered once and has nothing generated.
	d, err := r.Render(ctx, exampleRequest(t, "blue", RoleActive))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Generated) != 0 || d.Digest != digest(d) {
		t.Errorf("the example chart: generated %v, digest %s vs %s", d.Generated, d.Digest, digest(d))
	}
}

// A chart that keeps its password through lookup digests the same at its
// first install (lookup finds nothing, a fresh password) and once the Secret
// exists (lookup returns it): the re-run after the install is a no-op.
func TestGeneratedDigestSameBeforeAndAfterTheSecretExists(t *testing.T) {
	live := base64.StdEncoding.EncodeToString([]byte("live-password"))
	empty := &fakeLookup{objects: map[string]map[string]any{}}
	kept := &fakeLookup{objects: map[string]map[string]any{
		"v1 Secret ns/r-auth": {"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "r-auth", "namespace": "ns"}, "data": map[string]any{"password": live}},
	}}
	r := New(DefaultOptions())
	var digests []string
	for _, lookup := range []*fakeLookup{empty, kept, kept} {
		req := testdataRequest(t, "password")
		req.Lookup = lookup
		res, err := r.Render(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Generated) != 1 || res.Generated[0].Paths[0] != "/data/password" {
			t.Errorf("generated %+v, want the Secret's /data/password", res.Generated)
		}
		digests = append(digests, res.Digest)
	}
	if digests[0] != digests[1] || digests[1] != digests[2] {
		t.Errorf("digests at install and after: %v", digests)
	}
}

// A chart (a hostile pull request's, say) that makes workload fields vary
// from one render to the next — replicas, an image, a command, a CronJob's
// suspend, a controller's annotation — does not get them treated as the
// cluster's: they stay in the digest and the plan as rendered, so a change
// there is shown and applied as it is, and a Standby's replicas 0 never come
// back into an Active's plan. Only a Secret's values, unprefixed and
// checksum/ annotations are generated.
func TestGeneratedOnlySecretsAndPrivateAnnotations(t *testing.T) {
	r := New(DefaultOptions())
	ctx := context.Background()
	req := func(role Role) Request {
		q := testdataRequest(t, "generated-workload")
		q.Overlay.Role, q.Overlay.ScaleToZero = role, true
		return q
	}
	active, err := r.Render(ctx, req(RoleActive))
	if err != nil {
		t.Fatal(err)
	}
	want := []Generated{
		{Object: "generated-workload/templates/all.yaml: v1 Secret ns/r-auth", Paths: []string{"/data/password"}},
		{Object: "generated-workload/templates/all.yaml: apps/v1 Deployment ns/r", Paths: []string{"/metadata/annotations/rendered-at", "/spec/template/metadata/annotations/checksum~1secret"}},
	}
	if diff := cmp.Diff(want, active.Generated); diff != "" {
		t.Errorf("generated fields (-want +got):\n%s", diff)
	}
	again, err := r.Render(ctx, req(RoleActive))
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest == active.Digest {
		t.Error("two renders whose image, command and replicas differ digest the same")
	}

	// After a switchover the new Active's deployed revision is the
	// Standby's: replicas 0, CronJob suspended. Its plan keeps neither.
	standby, err := r.Render(ctx, req(RoleStandby))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := active.KeepGenerated(standby.Manifest); err != nil {
		t.Fatal(err)
	}
	for _, o := range active.Objects {
		var m struct {
			Spec struct {
				Replicas *int64 `json:"replicas"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(o.Body, &m); err != nil {
			t.Fatal(err)
		}
		if o.Kind == "Deployment" && (m.Spec.Replicas == nil || *m.Spec.Replicas == 0) {
			t.Errorf("the Active's plan took the Standby's replicas: %s", o.Body)
		}
	}
	if !strings.Contains(active.Manifest, "curl evil.example") {
		t.Errorf("the planned manifest lost the rendered command:\n%s", active.Manifest)
	}
}

// TestNamesGenerating: the stems' fast path answers as the regexp does.
func TestNamesGenerating(t *testing.T) {
	for _, name := range strings.Split(strings.Trim(strings.SplitN(generatingFuncs.String(), "(", 2)[1], ")\\b"), "|") {
		for _, text := range []string{"{{ " + name + " 8 }}", "x: " + name, name} {
			if !namesGenerating([]byte(text)) {
				t.Errorf("%q: not found by the fast path", text)
			}
		}
		if namesGenerating([]byte("{{ " + name + "x }}")) {
			t.Errorf("%sx: found as %s", name, name)
		}
	}
	if namesGenerating([]byte("apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n")) {
		t.Error("a plain manifest names a generating function")
	}
}
