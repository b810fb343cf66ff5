package render

import (
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// fakeLookup serves lookups from a map keyed "apiVersion Kind namespace/name".
// Its resources embed notFound, so everything but Get refuses.
type fakeLookup struct {
	objects map[string]map[string]any
	err     error // returned by GetClientFor when set
	calls   atomic.Int64
}

func (f *fakeLookup) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, false, f.err
	}
	return fakeResource{f: f, apiVersion: apiVersion, kind: kind}, true, nil
}

type fakeResource struct {
	notFound
	f                    *fakeLookup
	apiVersion, kind, ns string
}

func (r fakeResource) Namespace(ns string) dynamic.ResourceInterface { r.ns = ns; return r }

func (r fakeResource) Get(ctx context.Context, name string, opts metav1.GetOptions, sub ...string) (*unstructured.Unstructured, error) {
	if o, ok := r.f.objects[r.apiVersion+" "+r.kind+" "+r.ns+"/"+name]; ok {
		return &unstructured.Unstructured{Object: o}, nil
	}
	return r.notFound.Get(ctx, name, opts, sub...)
}

var renderedPassword = regexp.MustCompile(`(?m)^  password: (\S+)$`)

func password(t *testing.T, res *Result) string {
	t.Helper()
	m := renderedPassword.FindStringSubmatch(res.Manifest)
	if m == nil {
		t.Fatalf("no password in:\n%s", res.Manifest)
	}
	return m[1]
}

// TestRenderLookupKeepsLivePassword: a chart that keeps a generated
// password through lookup (the Bitnami pattern) renders the live one when
// the render is given the cluster's lookup, every time.
func TestRenderLookupKeepsLivePassword(t *testing.T) {
	live := base64.StdEncoding.EncodeToString([]byte("live-password"))
	lookup := &fakeLookup{objects: map[string]map[string]any{
		"v1 Secret ns/r-auth": {"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "r-auth", "namespace": "ns"}, "data": map[string]any{"password": live}},
	}}
	r := New(DefaultOptions())
	for range 2 {
		req := testdataRequest(t, "password")
		req.Lookup = lookup
		res, err := r.Render(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if got := password(t, res); got != live {
			t.Errorf("password %q, want the live %q", got, live)
		}
		if !res.UsedLookup {
			t.Error("UsedLookup not set")
		}
	}
	if lookup.calls.Load() != 2 {
		t.Errorf("%d lookups, want one per render", lookup.calls.Load())
	}
}

// TestRenderWithoutLookupFindsNothing: without a cluster, lookup finds
// nothing, as in `helm template`, so the chart generates a new password on
// every render, and the result says lookup was used.
func TestRenderWithoutLookupFindsNothing(t *testing.T) {
	r := New(DefaultOptions())
	var seen []string
	for range 2 {
		res, err := r.Render(context.Background(), testdataRequest(t, "password"))
		if err != nil {
			t.Fatal(err)
		}
		if !res.UsedLookup {
			t.Error("UsedLookup not set for a chart that calls lookup")
		}
		p, err := base64.StdEncoding.DecodeString(password(t, res))
		if err != nil || len(p) != 16 {
			t.Fatalf("want a generated 16-character password, got %q (%v)", p, err)
		}
		seen = append(seen, string(p))
	}
	if seen[0] == seen[1] {
		t.Error("two renders without lookup generated the same password")
	}
}

func TestRenderLookupNotUsed(t *testing.T) {
	lookup := &fakeLookup{}
	req := exampleRequest(t, "blue", RoleActive)
	req.Lookup = lookup
	res, err := New(DefaultOptions()).Render(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.UsedLookup || lookup.calls.Load() != 0 {
		t.Errorf("UsedLookup %v after %d lookups for a chart without lookup", res.UsedLookup, lookup.calls.Load())
	}
}

// TestRenderLookupError: a lookup the cluster cannot answer fails the
// render, naming the release and the template, as Helm's install fails.
func TestRenderLookupError(t *testing.T) {
	req := testdataRequest(t, "password")
	req.Lookup = &fakeLookup{err: &meta.NoKindMatchError{GroupKind: schema.GroupKind{Kind: "Secret"}}}
	_, err := New(DefaultOptions()).Render(context.Background(), req)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, w := range []string{`release "r"`, "password/templates/secret.yaml", "Secret"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// TestNotFoundServesOnlyReads: the cluster of a render without one answers
// reads with NotFound (which lookup turns into an empty map) and refuses
// everything else.
func TestNotFoundServesOnlyReads(t *testing.T) {
	l := &recordingLookup{}
	c, _, err := l.GetClientFor("v1", "Secret")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Namespace("ns").Get(ctx, "x", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get: %v, want NotFound", err)
	}
	if _, err := c.List(ctx, metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("list: %v, want NotFound", err)
	}
	if _, err := c.Create(ctx, &unstructured.Unstructured{}, metav1.CreateOptions{}); err == nil {
		t.Error("create succeeded")
	}
	if err := c.Delete(ctx, "x", metav1.DeleteOptions{}); err == nil {
		t.Error("delete succeeded")
	}
	if !l.used.Load() {
		t.Error("the call was not recorded")
	}
}
