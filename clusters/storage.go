package clusters

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"sort"
	"strconv"
	"sync"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// Helm's Secret storage driver layout. These are Helm's on-cluster format
// (what `helm ls` reads), not ours to change.
const (
	helmSecretType    = "helm.sh/release.v1"
	helmOwnerSelector = "owner=helm"
	helmLabelName     = "name"
	helmLabelVersion  = "version"
)

// releaseSecretName is the Secret that holds one revision in Helm's storage.
func releaseSecretName(name string, revision int) string {
	return fmt.Sprintf("sh.helm.release.v1.%s.v%d", name, revision)
}

// customLabels returns a release Secret's labels without Helm's own
// bookkeeping labels (name, owner, status, version, createdAt, modifiedAt):
// what is left are the labels the installer asked for.
func customLabels(secretLabels map[string]string) map[string]string {
	out := maps.Clone(secretLabels)
	for _, k := range driver.GetSystemLabels() {
		delete(out, k)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// matchLabels reports whether have holds every key/value in want.
func matchLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// latestRevisions picks, from Helm release Secrets of any number of
// releases and revisions, the Secret of each release's highest revision,
// using only the Secrets' labels (decoding every revision would cost far
// more than the one that matters). Secrets without a usable version label
// are ignored, as helm ls does with what it cannot read. The result is
// sorted by namespace, then name.
func latestRevisions(secrets []corev1.Secret) []*corev1.Secret {
	type key struct{ namespace, name string }
	type pick struct {
		secret   *corev1.Secret
		revision int
	}
	latest := map[key]pick{}
	for i := range secrets {
		s := &secrets[i]
		name := s.Labels[helmLabelName]
		rev, err := strconv.Atoi(s.Labels[helmLabelVersion])
		if name == "" || err != nil {
			continue
		}
		k := key{s.Namespace, name}
		if p, ok := latest[k]; !ok || rev > p.revision {
			latest[k] = pick{s, rev}
		}
	}
	out := make([]*corev1.Secret, 0, len(latest))
	for _, p := range latest {
		out = append(out, p.secret)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Labels[helmLabelName] < out[j].Labels[helmLabelName]
	})
	return out
}

var gzipMagic = []byte{0x1f, 0x8b, 0x08}

// decodeRelease reads the "release" field of a Helm release Secret: base64
// of (optionally gzipped) JSON, exactly as Helm's Secret driver writes it.
func decodeRelease(data []byte) (*release.Release, error) {
	b, err := base64.StdEncoding.DecodeString(string(data))
	if err != nil {
		return nil, fmt.Errorf("base64: %w", err)
	}
	if bytes.HasPrefix(b, gzipMagic) {
		r, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer r.Close()
		if b, err = io.ReadAll(r); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	}
	var sr storedRelease
	if err := json.Unmarshal(b, &sr); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	rls := &release.Release{Name: sr.Name, Namespace: sr.Namespace, Version: sr.Version, Manifest: sr.Manifest, Info: sr.Info}
	if sr.Chart != nil {
		rls.Chart = &chart.Chart{Metadata: sr.Chart.Metadata}
	}
	return rls, nil
}

// storedRelease is what a Release is made of in Helm's stored release. The
// rest — the chart's templates, files, schema and values, the release's
// values and hooks, most of the bytes — is scanned past, not decoded: at
// 1,000 releases per cluster, every run lists them all.
type storedRelease struct {
	Name      string        `json:"name"`
	Namespace string        `json:"namespace"`
	Version   int           `json:"version"`
	Manifest  string        `json:"manifest"`
	Info      *release.Info `json:"info"`
	Chart     *struct {
		Metadata *chart.Metadata `json:"metadata"`
	} `json:"chart"`
}

// releaseFromSecret decodes one Helm release Secret into a Release.
func releaseFromSecret(s *corev1.Secret) (Release, error) {
	rls, err := decodeRelease(s.Data["release"])
	if err != nil {
		return Release{}, err
	}
	rls.Labels = customLabels(s.Labels)
	return fromHelm(rls), nil
}

// secretStore adapts a typed Secret client for Helm's Secret storage driver.
// Helm's driver calls the API with context.Background(); this per-operation
// adapter substitutes the operation's context so storage calls are bounded
// by it. When cas is set, Update carries the resourceVersion that Get saw,
// turning Helm's blind overwrite into an optimistic-concurrency write.
//
// It holds a context only for the one operation it is built for.
type secretStore struct {
	corev1client.SecretInterface
	ctx context.Context
	cas bool

	mu  sync.Mutex
	rvs map[string]string // resourceVersion seen by Get, by Secret name
}

var _ corev1client.SecretInterface = (*secretStore)(nil)

func newSecretStore(ctx context.Context, secrets corev1client.SecretInterface, cas bool) *secretStore {
	return &secretStore{SecretInterface: secrets, ctx: ctx, cas: cas, rvs: map[string]string{}}
}

func (s *secretStore) Get(_ context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error) {
	obj, err := s.SecretInterface.Get(s.ctx, name, opts)
	if err == nil {
		s.mu.Lock()
		s.rvs[name] = obj.ResourceVersion
		s.mu.Unlock()
	}
	return obj, err
}

func (s *secretStore) List(_ context.Context, opts metav1.ListOptions) (*corev1.SecretList, error) {
	return s.SecretInterface.List(s.ctx, opts)
}

func (s *secretStore) Create(_ context.Context, obj *corev1.Secret, opts metav1.CreateOptions) (*corev1.Secret, error) {
	return s.SecretInterface.Create(s.ctx, obj, opts)
}

func (s *secretStore) Update(_ context.Context, obj *corev1.Secret, opts metav1.UpdateOptions) (*corev1.Secret, error) {
	if s.cas {
		s.mu.Lock()
		rv, ok := s.rvs[obj.Name]
		s.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("secret %q: update without a prior read", obj.Name)
		}
		obj = obj.DeepCopy()
		obj.ResourceVersion = rv
	}
	return s.SecretInterface.Update(s.ctx, obj, opts)
}

func (s *secretStore) Delete(_ context.Context, name string, opts metav1.DeleteOptions) error {
	return s.SecretInterface.Delete(s.ctx, name, opts)
}
