package reconciler

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

func result(cluster, release string, objs ...string) *render.Result {
	r := &render.Result{Cluster: cluster, Release: release, Namespace: "shop", ChartName: "c", ChartVersion: "1", Digest: strings.Join(objs, "|")}
	for _, o := range objs {
		parsed, err := render.ParseObjects(o, "shop")
		if err != nil {
			panic(err)
		}
		r.Objects = append(r.Objects, parsed...)
	}
	return r
}

const cmOld = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {greeting: hello}\n"
const cmNew = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {greeting: hello again}\n"
const secretOld = "apiVersion: v1\nkind: Secret\nmetadata: {name: key}\nstringData: {apiKey: old-secret-value}\n"
const secretNew = "apiVersion: v1\nkind: Secret\nmetadata: {name: key}\nstringData: {apiKey: new-secret-value}\n"

func TestDiffAgainst(t *testing.T) {
	m := &manifest.Manifest{Clusters: []manifest.Cluster{{Name: "green", Role: manifest.RoleStandby}, {Name: "blue", Role: manifest.RoleActive}}}
	from := []*render.Result{result("blue", "web", cmOld, secretOld), result("green", "web", cmOld), result("blue", "gone", cmOld)}
	to := []*render.Result{result("blue", "web", cmNew, secretNew), result("green", "web", cmOld), result("blue", "new", cmOld)}
	rep, err := DiffAgainst(m, from, m, to, "aaa", "bbb")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		cluster, release string
		change           Change
		objects          int
	}
	var got []row
	for _, c := range rep.Clusters {
		for _, r := range c.Releases {
			got = append(got, row{c.Name, r.Name, r.Change, r.ChangedObjects()})
		}
	}
	want := []row{
		{"blue", "gone", ChangeRemoved, 1},
		{"blue", "new", ChangeAdded, 1},
		{"blue", "web", ChangeChanged, 2},
		{"green", "web", ChangeUnchanged, 0},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(row{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	all := ""
	for _, o := range rep.Clusters[0].Releases[2].Objects {
		all += o.Diff
	}
	if strings.Contains(all, "secret-value") {
		t.Errorf("a Secret value leaked into the diff:\n%s", all)
	}
	if !strings.Contains(all, "-  greeting: hello\n") || !strings.Contains(all, "+  greeting: hello again\n") || !strings.Contains(all, "apiKey: (hidden, hmac ") {
		t.Errorf("unexpected diff:\n%s", all)
	}
	if !rep.HasDifferences() {
		t.Error("HasDifferences() = false")
	}
}

func TestIgnorePathsForAutoscaledWorkloads(t *testing.T) {
	d := Desired{
		Spec: manifest.Release{Name: "web", Namespace: "shop", Ignore: []manifest.IgnoreRule{{Kind: "ConfigMap", Paths: []string{"/data/x"}}}},
		Result: result("blue", "web",
			"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n",
			"apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}\n",
			cmOld),
	}
	active := ignorePaths(manifest.Cluster{Name: "blue", Role: manifest.RoleActive}, d)
	standby := ignorePaths(manifest.Cluster{Name: "green", Role: manifest.RoleStandby}, d)
	dep := objectKey{"apps", "Deployment", "shop", "web"}
	cm := objectKey{"", "ConfigMap", "shop", "web"}
	if diff := cmp.Diff([]string{"/spec/replicas"}, active[dep]); diff != "" {
		t.Errorf("active deployment (-want +got):\n%s", diff)
	}
	if len(standby[dep]) != 0 {
		t.Errorf("standby must see replica drift, ignores %v", standby[dep])
	}
	if diff := cmp.Diff([]string{"/data/x"}, standby[cm]); diff != "" {
		t.Errorf("ignore rule (-want +got):\n%s", diff)
	}
}

func TestRemovedObjects(t *testing.T) {
	deployed := "---\n# Source: c/templates/a.yaml\n" + cmOld + "---\n# Source: c/templates/b.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: gone}\n"
	keep := map[objectKey]bool{{"", "ConfigMap", "shop", "web"}: true}
	got, err := removedObjects(deployed, "shop", keep, NewSecretMask())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID() != "ConfigMap shop/gone" || got[0].Change != ChangeRemoved {
		t.Fatalf("got %+v, want only ConfigMap shop/gone removed", got)
	}
	if _, err := removedObjects("apiVersion: v1\nkind: ConfigMap\nmetadata: [", "shop", nil, NewSecretMask()); err == nil {
		t.Error("a broken deployed manifest must be an error, not silently nothing")
	}
}

// Item 3 of the safety issue: a diff rendered without a cluster says which
// releases call lookup.
func TestDiffAgainstSaysWhichReleasesUsedLookup(t *testing.T) {
	old := &render.Result{Release: "db", Namespace: "s", Digest: "a", ChartName: "db", ChartVersion: "1"}
	cur := &render.Result{Release: "db", Namespace: "s", Digest: "b", ChartName: "db", ChartVersion: "2", UsedLookup: true}
	rd, err := diffRelease(old, cur, nil, NewSecretMask())
	if err != nil {
		t.Fatal(err)
	}
	if !rd.UsedLookup || !strings.Contains(strings.Join(rd.Notes, "\n"), "lookup") {
		t.Errorf("release diff %+v: want UsedLookup and a note about lookup", rd)
	}
}

// The release's ignore rules leave their fields out of diff --against too,
// as they do in live diffs; other fields of the same object still show.
func TestDiffAgainstAppliesIgnoreRules(t *testing.T) {
	dep := func(stamp, image string) string {
		return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    metadata:\n      annotations: {rollme: \"" + stamp + "\"}\n    spec:\n      containers: [{name: web, image: \"" + image + "\"}]\n"
	}
	rules := []manifest.IgnoreRule{{Kind: "Deployment", Name: "web", Paths: []string{"/spec/template/metadata/annotations"}}}
	m := &manifest.Manifest{
		Clusters: []manifest.Cluster{{Name: "blue", Role: manifest.RoleActive}},
		Releases: []manifest.Release{{Name: "web", Namespace: "shop", Ignore: rules}, {Name: "api", Namespace: "shop"}},
	}
	from := []*render.Result{result("blue", "web", dep("1", "web:1")), result("blue", "api", dep("1", "web:1"))}
	to := []*render.Result{result("blue", "web", dep("2", "web:1")), result("blue", "api", dep("2", "web:1"))}
	rep, err := DiffAgainst(m, from, m, to, "aaa", "bbb")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ReleaseDiff{}
	for _, r := range rep.Clusters[0].Releases {
		got[r.Name] = r
	}
	if n := len(got["web"].Objects); n != 0 {
		t.Errorf("web: the ignored annotation shows as %d changed objects: %+v", n, got["web"].Objects)
	}
	if want := []string{"only fields its ignore rules leave out changed; a merge still upgrades it"}; !cmp.Equal(want, got["web"].Notes) {
		t.Errorf("web notes: %q", got["web"].Notes)
	}
	if n := len(got["api"].Objects); n != 1 {
		t.Errorf("api (no ignore rules): %d changed objects, want 1", n)
	}

	// Another field of the ignored object still shows, without the ignored one.
	to[0] = result("blue", "web", dep("2", "web:2"))
	rep, err = DiffAgainst(m, from, m, to, "aaa", "bbb")
	if err != nil {
		t.Fatal(err)
	}
	web := rep.Clusters[0].Releases[1]
	if web.Name != "web" || len(web.Objects) != 1 {
		t.Fatalf("web: %+v", web)
	}
	if d := web.Objects[0].Diff; !strings.Contains(d, "+      - image: web:2") || strings.Contains(d, "rollme") {
		t.Errorf("web diff shows the ignored field or misses the image:\n%s", d)
	}
}

// A change to a chart's crds/ shows in the plan with what Helm does with it
// (nothing, for a release that exists); a new release's CRDs show as added.
func TestDiffAgainstShowsCRDs(t *testing.T) {
	crd := func(size string) render.Object {
		return render.Object{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition", Name: "widgets.example.com", Source: "c/crds/w.yaml",
			Body: []byte("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec: {group: example.com, size: " + size + "}\n")}
	}
	m := &manifest.Manifest{Clusters: []manifest.Cluster{{Name: "blue", Role: manifest.RoleActive}}}
	withCRD := func(r *render.Result, o render.Object) *render.Result { r.CRDs = []render.Object{o}; return r }
	from := []*render.Result{withCRD(result("blue", "web", cmOld), crd("1"))}
	to := []*render.Result{withCRD(result("blue", "web", cmOld), crd("2")), withCRD(result("blue", "new", cmNew), crd("2"))}
	to[1].Objects[0].Name = "other"
	rep, err := DiffAgainst(m, from, m, to, "aaa", "bbb")
	if err != nil {
		t.Fatal(err)
	}
	rels := rep.Clusters[0].Releases
	if len(rels) != 2 || rels[0].Name != "new" || rels[1].Name != "web" {
		t.Fatalf("releases: %+v", rels)
	}
	web := rels[1]
	if web.Change != ChangeChanged || len(web.Objects) != 1 || web.Objects[0].Kind != "CustomResourceDefinition" || !strings.Contains(web.Objects[0].Diff, "+  size: 2") {
		t.Errorf("web: %+v", web)
	}
	if !cmp.Equal([]string{crdUpgradeNote}, web.Notes) {
		t.Errorf("web notes: %q", web.Notes)
	}
	var kinds []string
	for _, o := range rels[0].Objects {
		kinds = append(kinds, string(o.Change)+" "+o.Kind)
	}
	if diff := cmp.Diff([]string{"added ConfigMap", "added CustomResourceDefinition"}, kinds); diff != "" {
		t.Errorf("new release (-want +got):\n%s", diff)
	}
}

// A generated password differs between the two offline renders of a PR plan
// but is no change: the release is unchanged when nothing else is.
func TestDiffAgainstLeavesGeneratedFieldsOut(t *testing.T) {
	secret := func(pw string) string {
		return "# Source: c/templates/s.yaml\napiVersion: v1\nkind: Secret\nmetadata: {name: auth}\ndata: {password: " + pw + "}\n"
	}
	gen := func(r *render.Result) *render.Result {
		r.Generated = []render.Generated{{Object: r.Objects[0].Identity(), Paths: []string{"/data/password"}}}
		r.Digest = "stable"
		return r
	}
	m := &manifest.Manifest{Clusters: []manifest.Cluster{{Name: "blue", Role: manifest.RoleActive}}, Releases: []manifest.Release{{Name: "db", Namespace: "shop"}}}
	from := []*render.Result{gen(result("blue", "db", secret("b2xk")))}
	to := []*render.Result{gen(result("blue", "db", secret("bmV3")))}
	rep, err := DiffAgainst(m, from, m, to, "aaa", "bbb")
	if err != nil {
		t.Fatal(err)
	}
	if rd := rep.Clusters[0].Releases[0]; rd.Change != ChangeUnchanged || len(rd.Objects) != 0 || len(rd.Notes) != 0 {
		t.Errorf("a generated password alone shows as a change: %+v", rd)
	}
}

// A generated field only one side has is what the merge writes (a fresh
// value: the deployed revision has none to keep) or deletes, so diff
// --against shows it: a pull request cannot slip a new Secret key (an
// environment variable through envFrom, say) or a new object's generated
// field past the plan by appending a random suffix, nor remove a key unseen.
func TestDiffAgainstShowsGeneratedFieldsOnlyOneSideHas(t *testing.T) {
	secret := func(data string) string {
		return "# Source: c/templates/s.yaml\napiVersion: v1\nkind: Secret\nmetadata: {name: auth}\ndata: {" + data + "}\n"
	}
	gen := func(r *render.Result, paths ...string) *render.Result {
		r.Generated = []render.Generated{{Object: r.Objects[0].Identity(), Paths: paths}}
		return r
	}
	m := &manifest.Manifest{Clusters: []manifest.Cluster{{Name: "blue", Role: manifest.RoleActive}}, Releases: []manifest.Release{{Name: "db", Namespace: "shop"}}}
	for _, tc := range []struct {
		name     string
		from, to *render.Result
	}{
		{"key added", gen(result("blue", "db", secret("password: b2xk")), "/data/password"),
			gen(result("blue", "db", secret("password: bmV3, JAVA_TOOL_OPTIONS: LWphdmFhZ2VudA==")), "/data/password", "/data/JAVA_TOOL_OPTIONS")},
		{"key removed", gen(result("blue", "db", secret("password: b2xk, token: dG9r")), "/data/password", "/data/token"),
			gen(result("blue", "db", secret("password: bmV3")), "/data/password")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := DiffAgainst(m, []*render.Result{tc.from}, m, []*render.Result{tc.to}, "aaa", "bbb")
			if err != nil {
				t.Fatal(err)
			}
			rd := rep.Clusters[0].Releases[0]
			if rd.Change != ChangeChanged || len(rd.Objects) != 1 {
				t.Fatalf("the Secret's generated key added or removed does not show: %+v", rd)
			}
			if d := rd.Objects[0].Diff; !strings.Contains(d, "JAVA_TOOL_OPTIONS") && !strings.Contains(d, "token") || strings.Contains(d, "password") {
				t.Errorf("diff shows other than the key added or removed:\n%s", d)
			}
		})
	}
}

// Ignore rules a pull request adds do not apply to its own plan (only rules
// the base revision has too), and no rule hides the fields tandem's overlay
// sets: a Standby's replicas 0, a CronJob's suspend, a DNS weight.
func TestDiffAgainstIgnoreRulesHideNoOverlayField(t *testing.T) {
	dep := func(image, replicas, extra string) string {
		return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web" + extra + "}\nspec:\n  replicas: " + replicas + "\n  template:\n    spec:\n      containers: [{name: web, image: \"" + image + "\"}]\n"
	}
	cron := func(suspend string) string {
		return "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec: {schedule: '0 1 * * *', suspend: " + suspend + "}\n"
	}
	ing := func(weight string) string {
		return "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, annotations: {external-dns.alpha.kubernetes.io/aws-weight: \"" + weight + "\"}}\nspec: {}\n"
	}
	cluster := []manifest.Cluster{{Name: "green", Role: manifest.RoleStandby}}
	wide := []manifest.IgnoreRule{{Paths: []string{"/spec", "/metadata/annotations"}}}
	for _, tc := range []struct {
		name          string
		fromRules     []manifest.IgnoreRule
		toRules       []manifest.IgnoreRule
		from, to, has string
	}{
		{"rule added by the change", nil, []manifest.IgnoreRule{{Kind: "Deployment", Paths: []string{"/spec/template"}}},
			dep("web:1", "3", ""), dep("evil:1", "3", ""), "evil:1"},
		{"standby scaled up", wide, wide,
			dep("web:1", "0", ", annotations: {tandem.dev/active-replicas: '3'}"), dep("web:1", "3", ""), "replicas: 3"},
		{"cronjob resumed", wide, wide, cron("true"), cron("false"), "suspend: false"},
		{"weight raised", wide, wide, ing("0"), ing("100"), `aws-weight: "100"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := &manifest.Manifest{Clusters: cluster, Releases: []manifest.Release{{Name: "web", Namespace: "shop", Ignore: tc.fromRules}}}
			to := &manifest.Manifest{Clusters: cluster, Releases: []manifest.Release{{Name: "web", Namespace: "shop", Ignore: tc.toRules}}}
			rep, err := DiffAgainst(from, []*render.Result{result("green", "web", tc.from)}, to, []*render.Result{result("green", "web", tc.to)}, "aaa", "bbb")
			if err != nil {
				t.Fatal(err)
			}
			rd := rep.Clusters[0].Releases[0]
			if len(rd.Objects) != 1 || !strings.Contains(rd.Objects[0].Diff, "+  "+tc.has) && !strings.Contains(rd.Objects[0].Diff, tc.has) {
				t.Fatalf("the change to %q is hidden by an ignore rule: %+v", tc.has, rd)
			}
		})
	}
}

// A live diff's ignore rules do not hide the overlay's fields either: a
// Standby whose workload was scaled up by hand, or whose CronJob was resumed,
// is drift even when the release ignores /spec/replicas or /spec.
func TestIgnorePathsKeepOverlayFields(t *testing.T) {
	d := Desired{
		Spec: manifest.Release{Name: "web", Namespace: "shop", Ignore: []manifest.IgnoreRule{
			{Kind: "Deployment", Paths: []string{"/spec/replicas", "/spec/template/metadata"}}, {Kind: "CronJob", Paths: []string{"/spec"}}}},
		Result: result("green", "web",
			"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, annotations: {tandem.dev/active-replicas: '3'}}\nspec: {replicas: 0}\n",
			"apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec: {schedule: '0 1 * * *', suspend: true}\n"),
	}
	standby := ignorePaths(manifest.Cluster{Name: "green", Role: manifest.RoleStandby}, d)
	if diff := cmp.Diff([]string{"/spec/template/metadata"}, standby[objectKey{"apps", "Deployment", "shop", "web"}]); diff != "" {
		t.Errorf("standby deployment ignores (-want +got):\n%s", diff)
	}
	if p := standby[objectKey{"batch", "CronJob", "shop", "nightly"}]; len(p) != 0 {
		t.Errorf("standby CronJob ignores %v: a resumed CronJob would not be drift", p)
	}
}
