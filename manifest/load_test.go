package manifest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// newRepo copies the skeleton repository testdata/repo into a temporary directory and writes
// the fixture (a file under testdata/) as its tandem.yaml.
func newRepo(t *testing.T, fixture string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	return newRepoWith(t, string(data))
}

// newRepoWith is newRepo with tandem.yaml given inline.
func newRepoWith(t testing.TB, manifest string) string {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, filepath.Join("testdata", "repo"), dir)
	writeFile(t, filepath.Join(dir, FileName), manifest)
	return dir
}

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// problems returns the problems of a *ValidationError, failing the test for any other result.
func problems(t *testing.T, err error) []Problem {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a *ValidationError, got %v", err)
	}
	return ve.Problems
}

// at builds an expected problem in tandem.yaml.
func at(field string, line int, msg string) Problem {
	return Problem{File: FileName, Field: field, Line: line, Message: msg}
}

func TestLoadValid(t *testing.T) {
	defaults := DefaultLoadOptions()
	tests := []struct {
		fixture string
		want    Manifest
	}{
		{
			fixture: "valid-minimal.yaml",
			want: Manifest{
				ID:       DefaultID,
				Clusters: []Cluster{{Name: "blue", Role: RoleActive, Context: "blue"}},
				DNS:      DNS{AnnotationPrefix: DefaultAnnotationPrefix, ActiveWeight: DefaultActiveWeight},
				Releases: []Release{{
					Name: "web", Namespace: "shop", Chart: "./charts/web",
					Standby: StandbyScaleToZero, StandbyHooks: StandbyHooksSkip, Rollout: RolloutParallel, OnFailure: OnFailureRollback, Timeout: "5m",
				}},
			},
		},
		{
			fixture: "valid-full.yaml",
			want: Manifest{
				ID: "shop-team",
				Clusters: []Cluster{
					{Name: "blue", Role: RoleActive, Context: "kind-blue"},
					{Name: "green", Role: RoleStandby, Context: "green", Releases: []string{"web", "shop/api", "platform/api"}},
					{Name: "purple", Role: RoleStandby, Context: "purple", Releases: []string{}},
				},
				DNS: DNS{AnnotationPrefix: "example.com/", ActiveWeight: 255},
				Repositories: []Repository{
					{Name: "bitnami", URL: "https://charts.bitnami.com/bitnami"},
					{Name: "registry", URL: "oci://registry.example.com/charts"},
				},
				Releases: []Release{
					{
						Name: "web", Namespace: "shop", Chart: "./charts/web",
						Values: []string{"values/common.yaml", "./values/empty.yaml"},
						Set: map[string]any{
							"image.tag": "1.2.3", "replicas": int64(3), "ratio": 0.5, "debug": true,
							"country": "no", "nothing": nil,
						},
						Clusters: map[string]Overlay{
							"green": {Values: []string{"values/green.yaml"}, Set: map[string]any{"replicas": int64(0)}},
							"blue":  {Values: []string{"values/blue.yaml"}},
						},
						Wave: 1, Needs: []string{"platform/api"},
						Standby: StandbyKeep, StandbyHooks: StandbyHooksRun, Rollout: RolloutStandbyFirst, Timeout: "90s",
						Adopt: true, Force: true, OnFailure: OnFailureKeep, DriftCorrection: true,
						Ignore: []IgnoreRule{
							{Kind: "Deployment", Name: "web", Paths: []string{"/spec/replicas", "/metadata/annotations/a~1b~0c"}},
							{Paths: []string{"/status"}},
						},
					},
					{
						Name: "api", Namespace: "shop", Chart: "bitnami/nginx", Version: "15.0.0", Wave: 2, Needs: []string{"web"},
						Standby: StandbyScaleToZero, StandbyHooks: StandbyHooksSkip, Rollout: RolloutParallel, OnFailure: OnFailureRollback, Timeout: "5m",
					},
					{
						Name: "api", Namespace: "platform", Chart: "oci://registry.example.com/charts/api", Version: "1.0.0",
						Standby: StandbyScaleToZero, StandbyHooks: StandbyHooksSkip, Rollout: RolloutParallel, OnFailure: OnFailureRollback, Timeout: "5m",
					},
				},
			},
		},
		{
			fixture: "valid-anchors.yaml",
			want: Manifest{
				ID:       DefaultID,
				Clusters: []Cluster{{Name: "blue", Role: RoleActive, Context: "blue"}},
				DNS:      DNS{AnnotationPrefix: DefaultAnnotationPrefix, ActiveWeight: DefaultActiveWeight},
				Releases: []Release{
					{
						Name: "web", Namespace: "shop", Chart: "./charts/web", Values: []string{"values/common.yaml"},
						Standby: StandbyScaleToZero, StandbyHooks: StandbyHooksSkip, Rollout: RolloutParallel, OnFailure: OnFailureRollback, Timeout: "10m",
					},
					{
						Name: "web-canary", Namespace: "shop", Chart: "./charts/web", Values: []string{"values/common.yaml"},
						Set:     map[string]any{"canary": true},
						Standby: StandbyScaleToZero, StandbyHooks: StandbyHooksSkip, Rollout: RolloutParallel, OnFailure: OnFailureRollback, Timeout: "10m",
					},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			dir := newRepo(t, tt.fixture)
			got, err := Load(dir, LoadOptions{})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := tt.want
			want.Dir = dir
			want.Options = defaults
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("Load mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoadExample keeps the example repository that the README and the demo use loadable.
func TestLoadExample(t *testing.T) {
	m, err := Load(filepath.Join("..", "examples", "manifest"), DefaultLoadOptions())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(m.Clusters) == 0 || len(m.Releases) == 0 {
		t.Fatalf("example has %d clusters and %d releases", len(m.Clusters), len(m.Releases))
	}
}

func TestLoadInvalidFixtures(t *testing.T) {
	const dnsRules = "(lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)"
	const chartForms = "a directory in this repository (./charts/web), repository/chart, or oci://"
	tests := []struct {
		fixture string
		want    []Problem
	}{
		{"invalid-empty.yaml", []Problem{at("", 0, "file is empty")}},
		{"invalid-syntax.yaml", []Problem{at("", 6, "invalid YAML: mapping values are not allowed in this context")}},
		{"invalid-multidoc.yaml", []Problem{at("", 4, "more than one YAML document: the file must hold exactly one")}},
		{"invalid-root-list.yaml", []Problem{at("", 1, "must be a mapping, got a list")}},
		{"invalid-alias-bomb.yaml", []Problem{at("", 0, "document has more than 100000 YAML nodes once aliases are expanded")}},
		{"invalid-alias-cycle.yaml", []Problem{at("", 2, "alias *loop refers to a node that contains it")}},
		{"invalid-unknown-fields.yaml", []Problem{
			at("clusters[0].weight", 4, `unknown field "weight" (known fields: name, role, context, releases, kubeVersion, apiVersions)`),
			at("releases[0].onfailure", 9, `unknown field "onfailure"; did you mean "onFailure"?`),
			at("releases[0].clusters.blue.valuesFiles", 12, `unknown field "valuesFiles" (known fields: values, set)`),
			at("helm", 13, `unknown field "helm" (known fields: id, clusters, dns, repositories, releases)`),
		}},
		{"invalid-types.yaml", []Problem{
			at("clusters[0].name", 2, "must be a string, got the integer 123 (quote it if it is meant as a string)"),
			at("dns", 4, `must be a mapping, got "external-dns"`),
			at("releases[0].wave", 9, `must be an integer, got "1"`),
			at("releases[0].adopt", 10, `must be true or false, got "yes"`),
			at("releases[0].needs", 11, `must be a list, got "db"`),
			at("releases[0].set.image", 13, "must be a string, number, boolean or null, got a mapping"),
			at("releases[0].set.inf", 14, "must be a string, number, boolean or null, got the number .inf"),
			at("releases[0].clusters", 15, "must be a mapping, got a list"),
			at("releases[0].values[0]", 16, "must be a string, got a list"),
		}},
		{"invalid-duplicate-keys.yaml", []Problem{
			at("clusters[0].role", 4, `duplicate key "role" (first on line 3)`),
			at("releases[0].set.replicas", 11, `duplicate key "replicas" (first on line 10)`),
			at("releases", 12, `duplicate key "releases" (first on line 5)`),
		}},
		{"invalid-clusters.yaml", []Problem{
			at("clusters[0].name", 2, `"Blue_1" is not a DNS label `+dnsRules),
			at("clusters[1].releases[1]", 6, `unknown release "db"`),
			at("clusters[1].releases[2]", 6, `release "web" is listed twice (also clusters[1].releases[0])`),
			at("clusters[2].name", 7, `duplicate cluster name "green" (also clusters[1])`),
			at("clusters[2].role", 8, `unknown role "primary": must be active or standby`),
			at("clusters[3].name", 9, "must be set"),
			at("clusters[3].role", 9, "must be set: active or standby"),
			at("clusters[4].name", 10, `"this-name-is-far-too-long-to-be-a-dns-label-because-it-has-more-than-63" is not a DNS label `+dnsRules),
		}},
		{"invalid-no-active.yaml", []Problem{
			at("clusters", 2, "no cluster has role active: at least one is required (with every DNS weight zero, Route 53 would split traffic equally)"),
		}},
		{"invalid-no-clusters.yaml", []Problem{at("clusters", 0, "at least one cluster is required")}},
		{"invalid-id.yaml", []Problem{
			at("id", 1, `"Team_A" is not a DNS label of at most 40 characters `+dnsRules),
		}},
		{"invalid-dns.yaml", []Problem{
			at("dns.annotationPrefix", 5, `"external-dns" must be a DNS subdomain followed by "/" (e.g. external-dns.alpha.kubernetes.io/)`),
			at("dns.activeWeight", 6, "must be within 1..255, got 0"),
		}},
		{"invalid-releases.yaml", []Problem{
			at("releases[0].name", 5, `"a-release-name-that-is-longer-than-helms-limit-of-53-chars" is 58 characters long; Helm allows at most 53`),
			at("releases[1].name", 8, `"Web" is not a valid Helm release name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)`),
			at("releases[2].namespace", 12, `"Shop" is not a DNS label `+dnsRules),
			at("releases[4].name", 17, `duplicate release "shop/api" (also releases[3])`),
			at("releases[5].name", 20, "must be set"),
			at("releases[5].namespace", 20, "must be set"),
		}},
		{"invalid-charts.yaml", []Problem{
			at("releases[0].chart", 8, "must be set: "+chartForms),
			at("releases[1].chart", 12, `chart "./charts/../../web" is outside the manifest repository (the path climbs out with "..")`),
			at("releases[2].chart", 15, `chart "/etc" is outside the manifest repository (absolute path; use one relative to the repository root)`),
			at("releases[3].chart", 18, `chart directory "./charts/missing" does not exist`),
			at("releases[4].chart", 21, `chart directory "stable/nginx" does not exist, and "stable" is not a declared repository`),
			at("releases[5].chart", 24, `chart "./values/common.yaml" is not a directory`),
			at("releases[6].chart", 27, `chart directory "./charts/nochart" has no Chart.yaml`),
			at("releases[7].version", 28, `must be set for the remote chart "bitnami/nginx"`),
			at("releases[8].version", 31, `must be set for the remote chart "oci://registry.example.com/charts/api"`),
			at("releases[9].chart", 36, "unsupported chart reference: use "+chartForms),
			at("releases[10].chart", 39, `"bitnami/nginx/extra" must be repository/chart`),
		}},
		{"invalid-values.yaml", []Problem{
			at("releases[0].values[0]", 9, `values file "../outside.yaml" is outside the manifest repository (the path climbs out with "..")`),
			at("releases[0].values[1]", 10, `values file "/etc/passwd" is outside the manifest repository (absolute path; use one relative to the repository root)`),
			at("releases[0].values[2]", 11, `values file "values/missing.yaml" does not exist`),
			at("releases[0].values[3]", 12, `values file "values/dir" is not a regular file`),
			at("releases[0].values[6]", 15, "must not be empty"),
			at("releases[0].clusters.blue.values[0]", 18, `values file "values/../../outside.yaml" is outside the manifest repository (the path climbs out with "..")`),
			{File: "values/broken.yaml", Line: 1, Message: "invalid YAML: did not find expected ',' or ']'"},
			{File: "values/list.yaml", Line: 1, Message: "a values file must hold a mapping, got a list"},
		}},
		{"invalid-references.yaml", []Problem{
			at("clusters[1].releases[0]", 6, `release "web" needs "platform", which is not enabled on cluster "green"`),
			at("clusters[1].releases[0]", 6, `release "web" needs "shop/api", which is not enabled on cluster "green"`),
			at("releases[0].needs[0]", 12, `release name "api" is ambiguous: several namespaces have it, so write namespace/name`),
			at("releases[0].needs[1]", 12, `unknown release "db"`),
			at("releases[0].needs[2]", 12, "a release cannot need itself"),
			at("releases[0].needs[4]", 12, `"platform" is listed twice (also releases[0].needs[3])`),
			at("releases[0].needs[5]", 12, `needs "shop/api", which is in a later wave (1) than this release (0)`),
			at("releases[0].clusters.purple", 14, `unknown cluster "purple"`),
		}},
		{"invalid-cycle.yaml", []Problem{at("releases[0].needs", 8, "dependency cycle: a -> c -> b -> a")}},
		{"invalid-enums.yaml", []Problem{
			at("releases[0].standby", 8, `unknown standby mode "scale-down": must be scale-to-zero or keep`),
			at("releases[0].rollout", 9, `unknown rollout "canary": must be parallel or standby-first`),
			at("releases[0].onFailure", 10, `unknown onFailure "retry": must be rollback or keep`),
			at("releases[0].timeout", 11, `"5 minutes" is not a Go duration such as 90s or 5m`),
			at("releases[1].timeout", 15, `must be positive, got "0s"`),
			at("releases[1].standbyHooks", 16, `unknown standbyHooks "always": must be skip or run`),
		}},
		{"invalid-repositories.yaml", []Problem{
			at("repositories[1].name", 7, `duplicate repository name "bitnami" (also repositories[0])`),
			at("repositories[1].url", 8, `scheme must be one of https://, http://, oci://, got "ftp"`),
			at("repositories[2].url", 10, "must not hold credentials: name where they are with username or usernameEnv, and passwordEnv or passwordFile"),
			at("repositories[3].name", 11, `"no/slash" is not a valid repository name (letters, digits, '.', '_' and '-')`),
			at("repositories[3].url", 11, "must be set"),
			at("repositories[4].name", 12, "must be set"),
			at("repositories[4].url", 12, "has no host"),
		}},
		{"invalid-repository-access.yaml", []Problem{
			at("repositories[0].url", 6, "is plain http://: use https://, or set insecure: true to send charts (and any credentials) unencrypted"),
			at("repositories[1].usernameEnv", 10, "set username or usernameEnv, not both"),
			at("repositories[2]", 12, "a user needs a password (passwordEnv or passwordFile) and a password a user (username or usernameEnv)"),
			at("repositories[3].passwordFile", 18, "must be an absolute path: a credential does not belong in the manifest repository"),
			at("repositories[3].certFile", 19, "must be an absolute path: a credential does not belong in the manifest repository"),
			at("repositories[3].keyFile", 20, "must be an absolute path: a credential does not belong in the manifest repository"),
			at("repositories[4]", 21, "certFile and keyFile go together"),
			at("repositories[4].usernameEnv", 23, `"1USER" is not an environment variable name`),
			at("repositories[4].passwordEnv", 24, `"PASS-WORD" is not an environment variable name`),
			at("repositories[5].caFile", 28, `"../ca.pem": outside the manifest repository (the path climbs out with "..")`),
			at("releases[0].digest", 37, `must be "sha256:" and 64 lower-case hex digits (the SHA-256 of the chart archive)`),
			at("releases[1].digest", 41, "pins a remote chart's archive; a chart in this repository is pinned by its commit"),
		}},
		{"invalid-ignore.yaml", []Problem{
			at("releases[0].ignore[0].paths", 9, "at least one path is required"),
			at("releases[0].ignore[1].paths[0]", 10, `"spec/replicas" is not a JSON pointer: it must start with "/"`),
			at("releases[0].ignore[1].paths[1]", 10, `"/metadata/annotations/a~2b" is not a JSON pointer: "~" must be followed by 0 (for "~") or 1 (for "/")`),
			at("releases[0].ignore[1].paths[2]", 10, `"/ok~" is not a JSON pointer: "~" must be followed by 0 (for "~") or 1 (for "/")`),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			m, err := Load(newRepo(t, tt.fixture), LoadOptions{})
			if m != nil {
				t.Errorf("Load returned a manifest along with %v", err)
			}
			if diff := cmp.Diff(tt.want, problems(t, err)); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
	// Every invalid fixture must have a case above, or it tests nothing.
	files, err := filepath.Glob(filepath.Join("testdata", "invalid-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.fixture] = true
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("fixture %s has no test case", f)
		}
	}
}

// TestLoadInvalidInline covers rules whose variants are easier to read inline than as fixtures.
func TestLoadInvalidInline(t *testing.T) {
	const head = "clusters: [{name: blue, role: active}]\n"
	tests := []struct {
		name     string
		manifest string
		want     []Problem
	}{
		{
			name:     "weight over 255",
			manifest: head + "dns: {activeWeight: 256}\n",
			want:     []Problem{at("dns.activeWeight", 2, "must be within 1..255, got 256")},
		},
		{
			name:     "bare releases list on a cluster",
			manifest: "clusters:\n- name: blue\n  role: active\n  releases:\n",
			want:     []Problem{at("clusters[0].releases", 4, "is empty: write [] to enable no release, or leave the key out to enable every release")},
		},
		{
			name:     "negative weight",
			manifest: head + "dns:\n  activeWeight: -1\n",
			want:     []Problem{at("dns.activeWeight", 3, "must be within 1..255, got -1")},
		},
		{
			name:     "needs by namespace/name that does not exist",
			manifest: head + "releases:\n- {name: web, namespace: shop, chart: ./charts/web, needs: [other/web]}\n",
			want:     []Problem{at("releases[0].needs[0]", 3, `unknown release "other/web"`)},
		},
		{
			name:     "self cycle through two releases",
			manifest: head + "releases:\n- {name: a, namespace: n, chart: ./charts/web, needs: [b]}\n- {name: b, namespace: n, chart: ./charts/web, needs: [a]}\n",
			want:     []Problem{at("releases[0].needs", 3, "dependency cycle: a -> b -> a")},
		},
		{
			name:     "two separate cycles",
			manifest: head + "releases:\n- {name: a, namespace: n, chart: ./charts/web, needs: [b]}\n- {name: b, namespace: n, chart: ./charts/web, needs: [a]}\n- {name: c, namespace: n, chart: ./charts/web, needs: [d]}\n- {name: d, namespace: n, chart: ./charts/web, needs: [c]}\n",
			want: []Problem{
				at("releases[0].needs", 3, "dependency cycle: a -> b -> a"),
				at("releases[2].needs", 5, "dependency cycle: c -> d -> c"),
			},
		},
		{
			name:     "empty set key",
			manifest: head + "releases:\n- name: web\n  namespace: shop\n  chart: ./charts/web\n  set: {\"\": 1}\n",
			want:     []Problem{at("releases[0].set", 6, "a key must not be empty")},
		},
		{
			name:     "a type error is not reported again as missing",
			manifest: head + "releases:\n- name: [web]\n  namespace: shop\n  chart: ./charts/web\n",
			want:     []Problem{at("releases[0].name", 3, "must be a string, got a list")},
		},
		{
			name:     "merge key of a scalar",
			manifest: "x: &x 1\nclusters:\n- <<: *x\n  name: blue\n  role: active\n",
			want: []Problem{
				at("x", 1, `unknown field "x" (known fields: id, clusters, dns, repositories, releases)`),
				at("clusters[0]", 3, "a merge key (<<) must refer to a mapping or a list of mappings, got the integer 1"),
			},
		},
		{
			name:     "tagged scalar",
			manifest: head + "releases:\n- name: !!binary d2Vi\n  namespace: shop\n  chart: ./charts/web\n",
			want:     []Problem{at("releases[0].name", 3, `must be a string, got !!binary "d2Vi" (quote it if it is meant as a string)`)},
		},
		{
			name:     "integer out of range",
			manifest: head + "releases:\n- {name: web, namespace: shop, chart: ./charts/web, wave: 99999999999999999999}\n",
			want:     []Problem{at("releases[0].wave", 3, "must be an integer, got the number 99999999999999999999")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(newRepoWith(t, tt.manifest), LoadOptions{})
			if diff := cmp.Diff(tt.want, problems(t, err)); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadSymlinks(t *testing.T) {
	const head = "clusters: [{name: blue, role: active}]\nreleases:\n- name: web\n  namespace: shop\n"
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "secret.yaml"), "password: hunter2\n")
	writeFile(t, filepath.Join(outside, "chart", "Chart.yaml"), "apiVersion: v2\nname: x\nversion: 1.0.0\n")

	tests := []struct {
		name     string
		setup    func(t *testing.T, dir string)
		manifest string
		want     []Problem // nil: Load must succeed
	}{
		{
			name: "values file symlinked outside",
			setup: func(t *testing.T, dir string) {
				symlink(t, filepath.Join(outside, "secret.yaml"), filepath.Join(dir, "values", "leak.yaml"))
			},
			manifest: head + "  chart: ./charts/web\n  values: [values/leak.yaml]\n",
			want:     []Problem{at("releases[0].values[0]", 6, `values file "values/leak.yaml" is outside the manifest repository (through a symlink)`)},
		},
		{
			name:     "values directory symlinked outside",
			setup:    func(t *testing.T, dir string) { symlink(t, outside, filepath.Join(dir, "ext")) },
			manifest: head + "  chart: ./charts/web\n  values: [ext/secret.yaml]\n",
			want:     []Problem{at("releases[0].values[0]", 6, `values file "ext/secret.yaml" is outside the manifest repository (through a symlink)`)},
		},
		{
			name:     "relative symlink inside the repository",
			setup:    func(t *testing.T, dir string) { symlink(t, "common.yaml", filepath.Join(dir, "values", "alias.yaml")) },
			manifest: head + "  chart: ./charts/web\n  values: [values/alias.yaml]\n",
		},
		{
			name: "chart directory symlinked outside",
			setup: func(t *testing.T, dir string) {
				symlink(t, filepath.Join(outside, "chart"), filepath.Join(dir, "charts", "ext"))
			},
			manifest: head + "  chart: ./charts/ext\n",
			want:     []Problem{at("releases[0].chart", 5, `chart "./charts/ext" is outside the manifest repository (through a symlink)`)},
		},
		{
			name: "chart file symlinked outside",
			setup: func(t *testing.T, dir string) {
				symlink(t, filepath.Join(outside, "secret.yaml"), filepath.Join(dir, "charts", "web", "files", "leak.yaml"))
			},
			manifest: head + "  chart: ./charts/web\n",
			want:     []Problem{at("releases[0].chart", 5, `chart "charts/web/files/leak.yaml": outside the manifest repository (symlink)`)},
		},
		{
			name: "chart subdirectory symlinked to a directory with an escape",
			setup: func(t *testing.T, dir string) {
				symlink(t, filepath.Join(outside, "secret.yaml"), filepath.Join(dir, "shared", "leak.yaml"))
				symlink(t, "../../shared", filepath.Join(dir, "charts", "web", "shared"))
			},
			manifest: head + "  chart: ./charts/web\n",
			want:     []Problem{at("releases[0].chart", 5, `chart "charts/web/shared/leak.yaml": outside the manifest repository (symlink)`)},
		},
		{
			name: "chart with a symlink loop inside the repository",
			setup: func(t *testing.T, dir string) {
				symlink(t, "..", filepath.Join(dir, "charts", "web", "templates", "up"))
			},
			manifest: head + "  chart: ./charts/web\n",
		},
		{
			name: "chart with a dangling symlink",
			setup: func(t *testing.T, dir string) {
				symlink(t, "missing.yaml", filepath.Join(dir, "charts", "web", "templates", "dangling.yaml"))
			},
			manifest: head + "  chart: ./charts/web\n",
			want:     []Problem{at("releases[0].chart", 5, `chart "charts/web/templates/dangling.yaml": symlink to a file that does not exist`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newRepoWith(t, tt.manifest)
			tt.setup(t, dir)
			m, err := Load(dir, LoadOptions{})
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if m == nil {
					t.Fatal("Load returned no manifest")
				}
				return
			}
			if diff := cmp.Diff(tt.want, problems(t, err)); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), outside) {
				t.Errorf("error reveals the symlink target %q: %v", outside, err)
			}
		})
	}
}

func TestLoadLimits(t *testing.T) {
	const minimal = "clusters: [{name: blue, role: active}]\nreleases:\n- {name: web, namespace: shop, chart: ./charts/web, values: [values/common.yaml]}\n"

	t.Run("tandem.yaml over MaxFileBytes", func(t *testing.T) {
		dir := newRepoWith(t, minimal+strings.Repeat("# padding\n", 100))
		_, err := Load(dir, LoadOptions{MaxFileBytes: 200})
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("want ErrTooLarge, got %v", err)
		}
		if !strings.Contains(err.Error(), FileName) {
			t.Errorf("error does not name %s: %v", FileName, err)
		}
	})
	t.Run("values file over MaxFileBytes", func(t *testing.T) {
		dir := newRepoWith(t, minimal)
		writeFile(t, filepath.Join(dir, "values", "common.yaml"), "a: "+strings.Repeat("x", 300)+"\n")
		_, err := Load(dir, LoadOptions{MaxFileBytes: 250})
		want := []Problem{at("releases[0].values[0]", 3, `values file "values/common.yaml" is 304 bytes, over the limit of 250`)}
		if diff := cmp.Diff(want, problems(t, err)); diff != "" {
			t.Errorf("problems mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("chart file over MaxChartFileBytes", func(t *testing.T) {
		dir := newRepoWith(t, minimal)
		writeFile(t, filepath.Join(dir, "charts", "web", "crds", "big.yaml"), strings.Repeat("x", 2000))
		_, err := Load(dir, LoadOptions{MaxChartFileBytes: 1000})
		want := []Problem{at("releases[0].chart", 3, `chart "charts/web/crds/big.yaml": file is too large: 2000 bytes, the limit is 1000`)}
		if diff := cmp.Diff(want, problems(t, err)); diff != "" {
			t.Errorf("problems mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("chart over MaxChartBytes", func(t *testing.T) {
		dir := newRepoWith(t, minimal)
		_, err := Load(dir, LoadOptions{MaxChartBytes: 100})
		ps := problems(t, err)
		if len(ps) != 1 || ps[0].Field != "releases[0].chart" || !strings.Contains(ps[0].Message, "the chart is over 100 bytes") {
			t.Errorf("want one chart-size problem, got %v", ps)
		}
	})
	t.Run("legitimate aliases over MaxYAMLNodes", func(t *testing.T) {
		_, err := Load(newRepo(t, "valid-anchors.yaml"), LoadOptions{MaxYAMLNodes: 20})
		want := []Problem{at("", 0, "document has more than 20 YAML nodes once aliases are expanded")}
		if diff := cmp.Diff(want, problems(t, err)); diff != "" {
			t.Errorf("problems mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("MaxProblems", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("clusters: [{name: blue, role: active}]\nreleases:\n")
		for range 10 {
			b.WriteString("- {name: web, namespace: shop, chart: ./charts/web, bogus: 1}\n")
		}
		_, err := Load(newRepoWith(t, b.String()), LoadOptions{MaxProblems: 3})
		ps := problems(t, err)
		if len(ps) != 4 || ps[3] != (Problem{File: FileName, Message: "16 more problems not listed"}) {
			t.Errorf("want 3 problems and a count of the rest, got %v", ps)
		}
	})
	t.Run("missing tandem.yaml", func(t *testing.T) {
		_, err := Load(t.TempDir(), LoadOptions{})
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), FileName) {
			t.Fatalf("want a not-exist error naming %s, got %v", FileName, err)
		}
		var ve *ValidationError
		if errors.As(err, &ve) {
			t.Errorf("a missing file is not a validation problem: %v", err)
		}
	})
}

func TestValidationErrorString(t *testing.T) {
	err := &ValidationError{Problems: []Problem{
		at("releases[2].needs[0]", 12, `unknown release "db"`),
		at("clusters", 0, "at least one cluster is required"),
		{File: "values/a.yaml", Line: 3, Message: "invalid YAML: oops"},
		at("", 0, "file is empty"),
	}}
	want := "tandem.yaml:12: releases[2].needs[0]: unknown release \"db\"\n" +
		"tandem.yaml: clusters: at least one cluster is required\n" +
		"values/a.yaml:3: invalid YAML: oops\n" +
		"tandem.yaml: file is empty"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("Error() mismatch (-want +got):\n%s", diff)
	}
}
