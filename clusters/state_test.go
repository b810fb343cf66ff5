package clusters

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// TestStateJSONFieldNames pins the stored format: field names may be added,
// never renamed.
func TestStateJSONFieldNames(t *testing.T) {
	s := State{
		Cluster: "blue", Role: "active", Commit: "abc123", Ref: "main",
		AppliedAt: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		Releases: []ReleaseState{{
			Name: "web", Namespace: "shop", Digest: "d1", Revision: 3, Outcome: "ok", Error: "boom", Duration: 1500 * time.Millisecond,
		}},
		LastError: "last",
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cluster":"blue","role":"active","commit":"abc123","ref":"main","appliedAt":"2026-11-23T12:00:00Z",` +
		`"releases":[{"name":"web","namespace":"shop","digest":"d1","revision":3,"outcome":"ok","error":"boom","duration":1500000000}],` +
		`"lastError":"last"}`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("State JSON (-want +got):\n%s", diff)
	}
}

// TestStateJSONAddedFields pins the names of the fields added for cluster
// identity, manifest ownership, capabilities and confirmed health.
func TestStateJSONAddedFields(t *testing.T) {
	s := State{
		Cluster: "blue", Role: "active", Commit: "abc123", AppliedAt: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		Releases:   []ReleaseState{{Name: "web", Namespace: "shop", Revision: 3, Outcome: "ok", Healthy: true}},
		ClusterUID: "0b7c", ManifestID: "shop", KubeVersion: "v1.31.2", APIVersions: []string{"v1", "apps/v1"},
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cluster":"blue","role":"active","commit":"abc123","appliedAt":"2026-11-23T12:00:00Z",` +
		`"releases":[{"name":"web","namespace":"shop","revision":3,"outcome":"ok","duration":0,"healthy":true}],` +
		`"clusterUID":"0b7c","manifestID":"shop","kubeVersion":"v1.31.2","apiVersions":["v1","apps/v1"]}`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("State JSON (-want +got):\n%s", diff)
	}
}

// realisticState is a state record of n releases as a large cluster would
// hold them: distinct names across namespaces, 40-hex digests, four checked
// objects' fingerprint, and drift on every tenth release.
// Random parts are random (seeded), since random bytes are what compression
// cannot shrink.
func realisticState(n int) State {
	rnd := rand.New(rand.NewPCG(8, uint64(n)))
	hexOf := func(bytes int) string {
		b := make([]byte, bytes)
		for i := range b {
			b[i] = byte(rnd.UintN(256))
		}
		return hex.EncodeToString(b)
	}
	words := []string{"payments", "orders", "catalog", "search", "checkout", "identity", "ledger", "notify", "pricing", "inventory"}
	s := State{
		Cluster: "blue", Role: "active", Commit: hexOf(20), Ref: "main",
		AppliedAt: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), ClusterUID: "5f0a1c2e-8d3b-4f6a-9e7c-1b2d3e4f5a6b",
		ManifestID: "shop", KubeVersion: "v1.31.2", APIVersions: []string{"v1", "apps/v1", "batch/v1", "networking.k8s.io/v1"},
	}
	for i := range n {
		name := fmt.Sprintf("%s-%s-%d", words[rnd.IntN(len(words))], words[rnd.IntN(len(words))], i)
		ns := fmt.Sprintf("team-%s-%d", words[i%len(words)], i%50)
		r := ReleaseState{
			Name: name, Namespace: ns, Digest: hexOf(20), Revision: 1 + rnd.IntN(300), Outcome: "unchanged",
			Duration: time.Duration(rnd.Int64N(int64(90 * time.Second))), Healthy: true, Fingerprint: fingerprintVersion + hexOf(18), Versions: "t1:" + hexOf(18),
		}
		if i%10 == 0 {
			r.Outcome = "upgraded"
			r.Drifted = []string{"Deployment " + ns + "/" + name, "ConfigMap " + ns + "/" + name + "-config"}
			r.Corrected = true
		}
		s.Releases = append(s.Releases, r)
	}
	return s
}

// TestStateEncodedSize covers issue 8 item 10 (size): the record of 5,000
// realistic releases is well under a ConfigMap's 1 MiB, with margin for
// longer names and errors, and keeps its drift-check cache.
func TestStateEncodedSize(t *testing.T) {
	s := realisticState(5000)
	plain, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	b, trimmed, err := encodeState(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("5000 releases: %d bytes of JSON, %d bytes stored", len(plain), len(b))
	if trimmed {
		t.Error("encodeState dropped the drift-check cache of 5000 releases")
	}
	if len(b) > maxStateBytes/2 {
		t.Errorf("5000 releases take %d bytes; want at most half of %d, for margin", len(b), maxStateBytes)
	}
	got, err := DecodeState(&corev1.ConfigMap{Data: map[string]string{StateFormatKey: StateFormat}, BinaryData: map[string][]byte{StateGzipKey: b}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&s, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// TestStateEncodeTooLarge checks what happens past the limit: the Checked
// cache goes first; a record too large even without it is an error naming
// the sizes, not a write the API server refuses.
func TestStateEncodeTooLarge(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	randomHex := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.UintN(256))
		}
		return hex.EncodeToString(b)
	}
	s := realisticState(10)
	for i := range s.Releases {
		s.Releases[i].Fingerprint = randomHex(100 << 10) // incompressible: 10*100 KiB of entropy
	}
	b, trimmed, err := encodeState(s)
	if err != nil || !trimmed {
		t.Fatalf("encodeState(huge cache) = %d bytes, trimmed %v, %v; want the cache dropped", len(b), trimmed, err)
	}
	got, err := DecodeState(&corev1.ConfigMap{Data: map[string]string{StateFormatKey: StateFormat}, BinaryData: map[string][]byte{StateGzipKey: b}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got.Releases {
		if r.Fingerprint != "" || r.Versions != "" {
			t.Fatalf("release %s/%s kept its cache", r.Namespace, r.Name)
		}
	}
	if len(s.Releases[0].Fingerprint) != 200<<10 {
		t.Error("encodeState modified its argument's releases")
	}

	s.LastError = randomHex(1200 << 10) // 1.2 MB of entropy, as 2.4 MB of hex
	if _, _, err := encodeState(s); err == nil || !strings.Contains(err.Error(), "over the") {
		t.Errorf("encodeState(1.2 MB of entropy) = %v, want an error saying it is too large", err)
	}
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeState(t *testing.T) {
	const js = `{"cluster":"blue","role":"active","commit":"c0ffee","appliedAt":"2026-11-23T12:00:00Z","releases":[{"name":"web","namespace":"shop","revision":3,"outcome":"ok","duration":0}]}`
	want := &State{Cluster: "blue", Role: "active", Commit: "c0ffee", AppliedAt: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		Releases: []ReleaseState{{Name: "web", Namespace: "shop", Revision: 3, Outcome: "ok"}}}
	tests := []struct {
		name    string
		cm      corev1.ConfigMap
		want    *State
		wantErr string
	}{
		{name: "format 1: plain JSON", cm: corev1.ConfigMap{Data: map[string]string{StateKey: js}}, want: want},
		{name: "format 2: gzip", cm: corev1.ConfigMap{Data: map[string]string{StateFormatKey: "2"}, BinaryData: map[string][]byte{StateGzipKey: gz(t, js)}}, want: want},
		{name: "format 2 wins over a leftover format 1", cm: corev1.ConfigMap{
			Data:       map[string]string{StateFormatKey: "2", StateKey: `{"cluster":"stale"}`},
			BinaryData: map[string][]byte{StateGzipKey: gz(t, js)}}, want: want},
		{name: "a later format is refused", cm: corev1.ConfigMap{Data: map[string]string{StateFormatKey: "3"}}, wantErr: `state format "3" is not one this tandem reads`},
		{name: "format 1 without its key", cm: corev1.ConfigMap{Data: map[string]string{}}, wantErr: `no "state.json"`},
		{name: "format 2 without its key", cm: corev1.ConfigMap{Data: map[string]string{StateFormatKey: "2"}}, wantErr: `no "state.json.gz" in binaryData`},
		{name: "format 2 not gzip", cm: corev1.ConfigMap{Data: map[string]string{StateFormatKey: "2"}, BinaryData: map[string][]byte{StateGzipKey: []byte(js)}},
			wantErr: "state.json.gz: gzip: invalid header"},
		{name: "format 2 bad JSON", cm: corev1.ConfigMap{Data: map[string]string{StateFormatKey: "2"}, BinaryData: map[string][]byte{StateGzipKey: gz(t, "{")}},
			wantErr: "state.json.gz: unexpected end of JSON input"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeState(&tc.cm)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("DecodeState() = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestStateFits5000Releases covers issue 8 item 10 (size) against a real API
// server: a record of 5,000 realistic releases is written and read back.
// Plain JSON in data, as tandem stored it before, is refused at this size.
func TestStateFits5000Releases(t *testing.T) {
	ctx, c, _ := connect(t)
	want := realisticState(5000)
	if err := c.WriteState(ctx, want); err != nil {
		t.Fatalf("WriteState(5000 releases): %v", err)
	}
	got, err := c.ReadStateOf(ctx, want.ManifestID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// TestStateReadsFormat1 checks that a record in the plain-JSON form earlier
// tandems wrote is read, and that the next write replaces it, leaving no
// stale copy behind.
func TestStateReadsFormat1(t *testing.T) {
	ctx, c, e := connect(t)
	cms := adminClient(t, e).CoreV1().ConfigMaps(SystemNamespace)
	old := State{Cluster: "blue", Role: "active", Commit: "c0ffee", AppliedAt: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		Releases: []ReleaseState{{Name: "web", Namespace: "shop", Revision: 3, Outcome: "ok"}}}
	js, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	// What the previous WriteState applied, field manager included.
	if err := c.inSystemNamespace(ctx, func() error {
		_ = cms.Delete(ctx, StateConfigMap, metav1.DeleteOptions{})
		_, err := cms.Apply(ctx, corev1ac.ConfigMap(StateConfigMap, SystemNamespace).WithData(map[string]string{StateKey: string(js)}),
			metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&old, got); diff != "" {
		t.Errorf("format 1 read (-want +got):\n%s", diff)
	}

	next := old
	next.Commit = "beef"
	if err := c.WriteState(ctx, next); err != nil {
		t.Fatal(err)
	}
	cm, err := cms.Get(ctx, StateConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, stale := cm.Data[StateKey]; stale {
		t.Errorf("after WriteState the format 1 key %q is still there", StateKey)
	}
	if cm.Data[StateFormatKey] != StateFormat || len(cm.BinaryData[StateGzipKey]) == 0 {
		t.Errorf("after WriteState: data %v, binaryData keys %v; want format %s in %q", cm.Data, keys(cm.BinaryData), StateFormat, StateGzipKey)
	}
	got, err = c.ReadState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&next, got); diff != "" {
		t.Errorf("format 2 read (-want +got):\n%s", diff)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Two manifests sharing a cluster keep one state record each (item 8 of
// the safety issue): writing one never replaces the other.
func TestStatePerManifest(t *testing.T) {
	if got := StateConfigMapFor(""); got != StateConfigMap {
		t.Errorf(`StateConfigMapFor("") = %q`, got)
	}
	if got := StateConfigMapFor("team-a"); got != "tandem-state-team-a" {
		t.Errorf(`StateConfigMapFor("team-a") = %q`, got)
	}
	ctx, c, _ := connect(t)
	if err := c.WriteState(ctx, State{Cluster: testCluster, Commit: "default-commit"}); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteState(ctx, State{Cluster: testCluster, Commit: "team-a-commit", ManifestID: "team-a"}); err != nil {
		t.Fatal(err)
	}
	def, err := c.ReadState(ctx)
	if err != nil || def == nil || def.Commit != "default-commit" {
		t.Errorf("default record = %+v, %v; want commit default-commit", def, err)
	}
	a, err := c.ReadStateOf(ctx, "team-a")
	if err != nil || a == nil || a.Commit != "team-a-commit" {
		t.Errorf("team-a record = %+v, %v; want commit team-a-commit", a, err)
	}
}
