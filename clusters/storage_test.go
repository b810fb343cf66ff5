package clusters

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	helmtime "helm.sh/helm/v3/pkg/time"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func helmSecret(ns, name string, version string, extra map[string]string) corev1.Secret {
	labels := map[string]string{"owner": "helm", "name": name, "version": version, "status": "deployed"}
	for k, v := range extra {
		labels[k] = v
	}
	return corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Namespace: ns, Name: "sh.helm.release.v1." + name + ".v" + version, Labels: labels,
	}}
}

func TestLatestRevisions(t *testing.T) {
	tests := []struct {
		name    string
		secrets []corev1.Secret
		want    []string // namespace/secret name
	}{
		{name: "none", want: []string{}},
		{
			name: "highest revision per release, numeric not lexical",
			secrets: []corev1.Secret{
				helmSecret("shop", "web", "9", nil),
				helmSecret("shop", "web", "10", nil),
				helmSecret("shop", "web", "2", nil),
				helmSecret("shop", "api", "1", nil),
			},
			want: []string{"shop/sh.helm.release.v1.api.v1", "shop/sh.helm.release.v1.web.v10"},
		},
		{
			name: "same name in two namespaces is two releases, sorted by namespace",
			secrets: []corev1.Secret{
				helmSecret("b", "web", "1", nil),
				helmSecret("a", "web", "3", nil),
			},
			want: []string{"a/sh.helm.release.v1.web.v3", "b/sh.helm.release.v1.web.v1"},
		},
		{
			name: "unusable version labels are ignored",
			secrets: []corev1.Secret{
				helmSecret("shop", "web", "x", nil),
				helmSecret("shop", "web", "1", nil),
				helmSecret("shop", "", "5", nil),
			},
			want: []string{"shop/sh.helm.release.v1.web.v1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []string{}
			for _, s := range latestRevisions(tt.secrets) {
				got = append(got, s.Namespace+"/"+s.Name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("latestRevisions() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCustomLabelsAndMatch(t *testing.T) {
	secret := helmSecret("shop", "web", "3", map[string]string{"tandem.io/owner": "tandem", "tandem.io/digest": "abc"})
	secret.Labels["createdAt"] = "123"
	got := customLabels(secret.Labels)
	want := map[string]string{"tandem.io/owner": "tandem", "tandem.io/digest": "abc"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("customLabels() (-want +got):\n%s", diff)
	}
	if _, ok := secret.Labels["owner"]; !ok {
		t.Error("customLabels modified its input")
	}
	if got := customLabels(helmSecret("shop", "web", "1", nil).Labels); got != nil {
		t.Errorf("customLabels(system labels only) = %v, want nil", got)
	}

	matches := []struct {
		name string
		want map[string]string
		ok   bool
	}{
		{"nil selects all", nil, true},
		{"subset", map[string]string{"tandem.io/owner": "tandem"}, true},
		{"value differs", map[string]string{"tandem.io/owner": "other"}, false},
		{"key missing", map[string]string{"team": "x"}, false},
	}
	for _, m := range matches {
		t.Run(m.name, func(t *testing.T) {
			if got := matchLabels(got, m.want); got != m.ok {
				t.Errorf("matchLabels(%v) = %v, want %v", m.want, got, m.ok)
			}
		})
	}
}

// TestDecodeReleaseReadsHelmsEncoding checks that our decoder reads what
// Helm's own Secret driver writes (the driver runs on a fake clientset here:
// only the encoding is under test).
func TestDecodeReleaseReadsHelmsEncoding(t *testing.T) {
	cs := fake.NewClientset()
	d := driver.NewSecrets(cs.CoreV1().Secrets("shop"))
	when := helmtime.Time{Time: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	rls := &release.Release{
		Name:      "web",
		Namespace: "shop",
		Version:   4,
		Manifest:  "---\nkind: ConfigMap\n",
		Labels:    map[string]string{"tandem.io/owner": "tandem"},
		Chart:     &chart.Chart{Metadata: &chart.Metadata{Name: "web", Version: "1.2.3", AppVersion: "2.0"}},
		Info:      &release.Info{Status: release.StatusPendingUpgrade, LastDeployed: when, Description: "Preparing upgrade"},
	}
	// What decodeRelease skips must not disturb what it reads.
	fillStoredRelease(rls)
	if err := d.Create(releaseSecretName("web", 4), rls); err != nil {
		t.Fatal(err)
	}
	s, err := cs.CoreV1().Secrets("shop").Get(context.Background(), releaseSecretName("web", 4), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := releaseFromSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	want := Release{
		Name: "web", Namespace: "shop", Revision: 4, Status: StatusPendingUpgrade,
		Chart: "web", ChartVersion: "1.2.3", AppVersion: "2.0",
		Labels:   map[string]string{"tandem.io/owner": "tandem"},
		Manifest: "---\nkind: ConfigMap\n", Updated: when.Time, Description: "Preparing upgrade",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("releaseFromSecret() (-want +got):\n%s", diff)
	}
	if !got.Pending() {
		t.Error("Pending() = false for pending-upgrade")
	}
	if _, err := decodeRelease([]byte("not base64!")); err == nil {
		t.Error("decodeRelease(garbage) succeeded")
	}
}

// TestSecretStoreCompareAndSwap checks that an Update through a cas store
// carries the resourceVersion its Get saw, so a concurrent change wins.
func TestSecretStoreCompareAndSwap(t *testing.T) {
	cs := fake.NewClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", ResourceVersion: "7"}})
	store := newSecretStore(context.Background(), cs.CoreV1().Secrets("ns"), true)
	if _, err := store.Update(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.UpdateOptions{}); err == nil {
		t.Error("Update without a prior Get succeeded")
	}
	if _, err := store.Get(context.Background(), "s", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	var sent string
	cs.PrependReactor("update", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sent = a.(k8stesting.UpdateAction).GetObject().(*corev1.Secret).ResourceVersion
		return false, nil, nil
	})
	if _, err := store.Update(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if sent != "7" {
		t.Errorf("update carried resourceVersion %q, want %q", sent, "7")
	}
}

// fillStoredRelease gives a release what a real one stores besides what
// Release reads: the chart's templates, files and values, the release's
// values and a hook, with fields named as the ones read ("name", "version",
// "manifest") inside them.
func fillStoredRelease(r *release.Release) {
	r.Chart.Templates = []*chart.File{
		{Name: "templates/deployment.yaml", Data: []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n")},
		{Name: "templates/configmap.yaml", Data: []byte(strings.Repeat("# a long template\n", 200))},
	}
	r.Chart.Files = []*chart.File{{Name: "README.md", Data: []byte("readme")}}
	r.Chart.Values = map[string]any{"name": "not-the-release", "version": 99, "manifest": "no"}
	r.Config = map[string]any{"replicas": 3, "name": "also-not"}
	r.Hooks = []*release.Hook{{Name: "migrate", Kind: "Job", Path: "templates/job.yaml", Manifest: "kind: Job\n", Events: []release.HookEvent{release.HookPreUpgrade}}}
}

// BenchmarkDecodeRelease compares reading a stored release whole, as Helm's
// driver does (baseline), with decodeRelease, which decodes what a Release
// holds and scans past the rest.
func BenchmarkDecodeRelease(b *testing.B) {
	cs := fake.NewClientset()
	d := driver.NewSecrets(cs.CoreV1().Secrets("shop"))
	rls := &release.Release{
		Name: "web", Namespace: "shop", Version: 4, Manifest: strings.Repeat("---\nkind: ConfigMap\n", 20),
		Chart: &chart.Chart{Metadata: &chart.Metadata{Name: "web", Version: "1.2.3"}},
		Info:  &release.Info{Status: release.StatusDeployed},
	}
	fillStoredRelease(rls)
	if err := d.Create(releaseSecretName("web", 4), rls); err != nil {
		b.Fatal(err)
	}
	s, err := cs.CoreV1().Secrets("shop").Get(context.Background(), releaseSecretName("web", 4), metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	data := s.Data["release"]
	b.Run("whole", func(b *testing.B) {
		for b.Loop() {
			raw, err := base64.StdEncoding.DecodeString(string(data))
			if err != nil {
				b.Fatal(err)
			}
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				b.Fatal(err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil {
				b.Fatal(err)
			}
			var r release.Release
			if err := json.Unmarshal(plain, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodeRelease", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeRelease(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
