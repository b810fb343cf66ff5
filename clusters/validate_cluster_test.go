package clusters

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/openapi/cached"
)

// inlineChart is a chart of the given templates and CRDs (file name → text).
func inlineChart(templates, crds map[string]string) *chart.Chart {
	ch := &chart.Chart{Metadata: &chart.Metadata{APIVersion: "v2", Name: "inline", Version: "0.1.0"}}
	for name, text := range templates {
		ch.Templates = append(ch.Templates, &chart.File{Name: "templates/" + name, Data: []byte(text)})
	}
	for name, text := range crds {
		ch.Files = append(ch.Files, &chart.File{Name: "crds/" + name, Data: []byte(text)})
	}
	return ch
}

const gadgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.validate.tandem.dev
spec:
  group: validate.tandem.dev
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, listKind: GadgetList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer}
`

// TestBadManifestOutcomes pins what an install does with a chart object the
// server or kubectl's validator would find fault with, as Helm's Build and
// the API server decide it: for a kind of Kubernetes' own API, the server
// validates (a wrong type is refused; an unknown field or a duplicate label
// is dropped with a warning, since Helm does not ask for strict field
// validation), while kubectl's client-side OpenAPI validation refuses
// unknown fields where the server's cannot be asked for (the items of a
// List, a kind with no PATCH). The validator built without the OpenAPI
// documents for the server's own kinds (factory.go) must keep every
// outcome as it was with kubectl's alone.
func TestBadManifestOutcomes(t *testing.T) {
	ctx, c, e := connect(t)
	deleteCRDAtCleanup(t, e, "gadgets.validate.tandem.dev")

	const built = "unable to build kubernetes objects from release manifest: "
	cases := []struct {
		name string
		tmpl string
		crds map[string]string
		// wantErr is a part of each install's error (dry run and real), ""
		// for none, unless wantDryErr is set for the dry run; wantStatus the
		// revision's status, "" for no revision.
		wantErr, wantDryErr, wantStatus string
	}{
		{name: "unknown top-level field", tmpl: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\nnotAField: x\ndata:\n  a: b\n",
			wantStatus: StatusDeployed},
		{name: "unknown nested field", tmpl: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app: d}\n  template:\n    metadata:\n      labels: {app: d}\n    spec:\n      containers:\n        - name: c\n          image: x\n          imagePullPolicyy: Always\n",
			wantStatus: StatusDeployed},
		{name: "duplicate label", tmpl: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  labels:\n    a: one\n    a: two\n",
			wantStatus: StatusDeployed},
		{name: "wrong type", tmpl: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: [1]\n",
			wantErr: `ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal array into Go struct field ConfigMap.data of type string`, wantStatus: StatusFailed},
		{name: "unknown field of a CRD's kind", tmpl: "apiVersion: validate.tandem.dev/v1\nkind: Gadget\nmetadata:\n  name: g\nspec:\n  size: 1\n  notAField: x\n",
			crds: map[string]string{"gadget.yaml": gadgetCRD}, wantStatus: StatusDeployed,
			// A dry run installs no CRDs.
			wantDryErr: built + `resource mapping not found for name: "g" namespace: "" from "": no matches for kind "Gadget" in version "validate.tandem.dev/v1"`},
		{name: "kind not served", tmpl: "apiVersion: nothere.tandem.dev/v1\nkind: Gadget\nmetadata:\n  name: g\n",
			wantErr: built + `resource mapping not found for name: "g" namespace: "" from "": no matches for kind "Gadget" in version "nothere.tandem.dev/v1"`},
		{name: "built-in version no longer served", tmpl: "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: g\n",
			wantErr: built + `resource mapping not found for name: "g" namespace: "" from "": no matches for kind "CronJob" in version "batch/v1beta1"`},
		{name: "unknown kind of a served group", tmpl: "apiVersion: apps/v1\nkind: Gizmo\nmetadata:\n  name: g\n",
			wantErr: built + `resource mapping not found for name: "g" namespace: "" from "": no matches for kind "Gizmo" in version "apps/v1"`},
		{name: "no kind", tmpl: "apiVersion: v1\nmetadata:\n  name: g\n",
			wantErr: built + `error validating "": error validating data: kind not set`},
		{name: "List with an unknown field", tmpl: "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: cm\n    notAField: x\n",
			wantErr: built + `error validating "": error validating data: ValidationError(ConfigMap): unknown field "notAField" in io.k8s.api.core.v1.ConfigMap`},
		{name: "unknown field of a kind with no PATCH", tmpl: "apiVersion: authorization.k8s.io/v1\nkind: SelfSubjectAccessReview\nspec:\n  resourceAttributes:\n    verb: get\n    resource: pods\n    notAField: x\n",
			wantErr: built + `error validating "": error validating data: ValidationError(SelfSubjectAccessReview.spec.resourceAttributes): unknown field "notAField" in io.k8s.api.authorization.v1.ResourceAttributes`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := testNamespace(t)
			ch := inlineChart(map[string]string{"x.yaml": tc.tmpl}, tc.crds)
			for _, dry := range []bool{true, false} {
				_, err := c.Install(ctx, ReleaseRequest{Name: "bad", Namespace: ns, Chart: ch, DryRun: dry})
				want := tc.wantErr
				if dry && tc.wantDryErr != "" {
					want = tc.wantDryErr
				}
				switch {
				case want == "" && err != nil:
					t.Errorf("Install(dry run %v) = %v, want it to pass to the server and succeed", dry, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("Install(dry run %v) = %v, want an error with %q", dry, err, want)
				}
			}
			hist, err := c.History(ctx, ns, "bad")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range hist {
				got = append(got, h.Status)
			}
			want := []string{}
			if tc.wantStatus != "" {
				want = []string{tc.wantStatus}
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("revisions %q, want %q", got, want)
			}
		})
	}
}

// TestInstallReadsNoOpenAPI: installing and upgrading a chart of the
// server's own kinds reads no OpenAPI document (it took the core, apps and
// networking ones, about 0.4 CPU seconds per cluster and run).
func TestInstallReadsNoOpenAPI(t *testing.T) {
	var paths pathCounter
	ctx, c, _ := connect(t, func(o *Options) { o.WrapTransport = paths.wrap })
	ns := testNamespace(t)
	req := ReleaseRequest{Name: "web", Namespace: ns, Chart: loadChart(t, "web"), Values: map[string]any{"replicas": 0}}
	if _, err := c.Install(ctx, req); err != nil {
		t.Fatal(err)
	}
	req.Values = map[string]any{"replicas": 0, "message": "again"}
	if _, err := c.Upgrade(ctx, req); err != nil {
		t.Fatal(err)
	}
	got := paths.snapshot()
	if got["/api"] == 0 {
		t.Fatalf("discovery never read (is the test still observing the cluster's requests?): %v", got)
	}
	for p, n := range got {
		if strings.HasPrefix(p, "/openapi/") {
			t.Errorf("%s read %d times", p, n)
		}
	}
}

// TestKnownKindsAgreeWithKubectl: for every kind the real API server
// serves, where Cluster.serverValidatesFields says the server validates
// fields itself, kubectl's own verifier (OpenAPI v3, falling back to v2, as
// kubectl's factory builds it) says so too; and it does say so for the
// common kinds, and not for what kubectl validates on the client.
func TestKnownKindsAgreeWithKubectl(t *testing.T) {
	ctx, c, e := connect(t)
	if _, err := c.Capabilities(ctx); err != nil {
		t.Fatal(err)
	}
	dyn := adminDynamic(t, e)
	disc := adminClient(t, e).Discovery()
	kubectl := resource.NewFallbackQueryParamVerifier(
		resource.NewQueryParamVerifierV3(dyn, cached.NewClient(disc.OpenAPIV3()), resource.QueryParamFieldValidation),
		resource.NewQueryParamVerifier(dyn, disc, resource.QueryParamFieldValidation))

	_, lists, err := disc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	known := map[schema.GroupVersionKind]bool{}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range l.APIResources {
			gvk := gv.WithKind(r.Kind)
			if strings.Contains(r.Name, "/") || known[gvk] || !c.serverValidatesFields(gvk) {
				continue
			}
			known[gvk] = true
			if err := kubectl.HasSupport(gvk); err != nil {
				t.Errorf("%s: known to validate its fields, but kubectl's verifier says %v", gvk, err)
			}
		}
	}
	t.Logf("%d kinds known to validate their fields", len(known))
	for _, gvk := range []schema.GroupVersionKind{
		{Version: "v1", Kind: "ConfigMap"}, {Version: "v1", Kind: "Service"}, {Version: "v1", Kind: "Secret"},
		{Group: "apps", Version: "v1", Kind: "Deployment"}, {Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"},
	} {
		if !known[gvk] {
			t.Errorf("%s is not known to validate its fields", gvk)
		}
	}
	for _, gvk := range []schema.GroupVersionKind{
		{Version: "v1", Kind: "List"},
		{Group: "authorization.k8s.io", Version: "v1", Kind: "SelfSubjectAccessReview"}, // no PATCH
		{Group: "batch", Version: "v1beta1", Kind: "CronJob"},                           // not served
		{Group: "apps", Version: "v1", Kind: "Gizmo"},
		{Group: "apiextensions.k8s.io", Version: "v1", Kind: "Widget"},
	} {
		if c.serverValidatesFields(gvk) {
			t.Errorf("%s is known to validate its fields; kubectl's validator must decide", gvk)
		}
	}

	// A server before 1.27 is never assumed to validate.
	c.capsMu.Lock()
	old := *c.caps
	c.caps.KubeVersion.Version = "v1.26.9"
	c.capsMu.Unlock()
	t.Cleanup(func() { c.capsMu.Lock(); *c.caps = old; c.capsMu.Unlock() })
	if c.serverValidatesFields(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}) {
		t.Error("a 1.26 server is assumed to validate ConfigMaps' fields")
	}
}
