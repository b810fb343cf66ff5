package clusters

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// The state record is the ConfigMap StateConfigMap in SystemNamespace.
//
// Format 1 held State as plain JSON in data[StateKey]; at a few thousand
// releases that passes the 1 MiB a ConfigMap may hold. Format 2, written
// today, holds it gzip-compressed in binaryData[StateGzipKey], and names its
// format in data[StateFormatKey] so that a later format is refused by this
// tandem instead of misread. Format 1 is still read.
const (
	StateConfigMap = "tandem-state"
	// StateKey is the data key of format 1 (plain JSON); read, never written.
	StateKey = "state.json"
	// StateGzipKey is the binaryData key of format 2 (gzip-compressed JSON).
	StateGzipKey = "state.json.gz"
	// StateFormatKey is the data key naming the record's format; absent in format 1.
	StateFormatKey = "format"
	// StateFormat is the format this tandem writes.
	StateFormat = "2"
)

const (
	// maxStateBytes is what the compressed record may take: a ConfigMap's
	// data and binaryData together hold at most 1 MiB (corev1.MaxSecretSize
	// is the same figure), less room for the format key.
	maxStateBytes = 1<<20 - 1<<10
	// maxStateJSON bounds decompression, so a damaged or hostile record
	// cannot exhaust memory.
	maxStateJSON = 256 << 20
)

// State is what tandem last did to a cluster, so `tandem status` and a
// restarted daemon know where things stand. The JSON field names are a
// stored format: they may be added to, never renamed.
type State struct {
	Cluster string `json:"cluster"`
	// Role is the role in effect on the cluster: the one its objects were
	// last rendered for. A switchover changes it only once it completes, so
	// while one is under way (Switchover) it is the role before it.
	Role      string    `json:"role"`
	Commit    string    `json:"commit"`
	Ref       string    `json:"ref,omitempty"`
	AppliedAt time.Time `json:"appliedAt"`
	// AppliedCommit is Commit when the run that wrote the record applied
	// all of it: every release the manifest gives this cluster, each ended
	// ok (no --release selection, no error, no prune left undone, no
	// switchover under way, no uncommitted files in the tree applied), so
	// the cluster holds that commit's content, hand edits aside. Empty
	// otherwise, and in records of a tandem from before it; cleared before a
	// run writes to the cluster, so a run that dies half-way leaves none. CI plans the
	// approval of the next reconcile against it (examples/ci).
	AppliedCommit string         `json:"appliedCommit,omitempty"`
	Releases      []ReleaseState `json:"releases"`
	LastError     string         `json:"lastError,omitempty"`
	// ClusterUID is the identity of the cluster the record is on (the UID
	// of its kube-system namespace), so that one API server reached under
	// two manifest cluster names, or a record copied to another cluster, is
	// recognised rather than trusted.
	ClusterUID string `json:"clusterUID,omitempty"`
	// ManifestID identifies the manifest that wrote the record, so that two
	// manifests sharing a cluster can tell their releases apart.
	ManifestID string `json:"manifestID,omitempty"`
	// KubeVersion is the server version last discovered on the cluster
	// (e.g. "v1.31.2"), so offline renders can use the cluster's
	// capabilities rather than Helm's default.
	KubeVersion string `json:"kubeVersion,omitempty"`
	// APIVersions are the API versions ("group/version" and
	// "group/version/Kind", CRDs included) last discovered on the cluster,
	// for the same reason as KubeVersion.
	APIVersions []string `json:"apiVersions,omitempty"`
	// Peers are the roles in effect of the manifest's clusters as the run
	// that wrote this record left them, so that a later run that cannot
	// reach a cluster still knows whether it is a switchover's source or
	// a bystander. A cluster that run knew nothing of is missing.
	Peers map[string]string `json:"peers,omitempty"`
	// Switchover is the switchover under way on this cluster (recorded in
	// the state record of every cluster it involves), nil when none.
	Switchover *SwitchoverState `json:"switchover,omitempty"`
}

// SwitchoverState is where a switchover stands, so that a run killed in any
// phase is resumed there and `tandem status` can show it.
type SwitchoverState struct {
	// From are the clusters going from Active to Standby, To those going
	// from Standby to Active.
	From []string `json:"from"`
	To   []string `json:"to"`
	// Commit is the manifest commit the phase was applied from.
	Commit string `json:"commit"`
	// Phase is the phase under way or last done (1..5), PhaseName its name;
	// PhaseDone says it finished.
	Phase     int    `json:"phase"`
	PhaseName string `json:"phaseName"`
	PhaseDone bool   `json:"phaseDone,omitempty"`
	// Blocked says why the switchover stopped (a release not healthy on
	// the target), empty while it runs.
	Blocked string `json:"blocked,omitempty"`
	// Skipped lists phases (or halves of one) not applied because a
	// cluster could not be reached, e.g. "3 close blue: unreachable".
	Skipped []string `json:"skipped,omitempty"`
	// SourceLost are the sources a person declared lost while tandem
	// could not reach them (tandem reconcile --source-lost): the targets'
	// CronJobs were resumed without the sources' being suspended.
	SourceLost []LostSource `json:"sourceLost,omitempty"`
	// Drill says a drill runs this switchover (tandem drill), not a
	// change of the roles in git.
	Drill     bool      `json:"drill,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// LostSource is one declaration that a switchover's source is lost: who
// made it (the run's lock holder) and when.
type LostSource struct {
	Cluster string    `json:"cluster"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
}

// ReleaseState is one release's part of State.
type ReleaseState struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Digest is the content digest tandem applied (also a release label).
	Digest   string `json:"digest,omitempty"`
	Revision int    `json:"revision"`
	Outcome  string `json:"outcome"`
	Error    string `json:"error,omitempty"`
	// Duration is how long the release's step took, in nanoseconds.
	Duration time.Duration `json:"duration"`
	// Drifted lists objects found changed outside git in that run
	// ("Kind namespace/name"), and whether they were put back.
	Drifted   []string `json:"drifted,omitempty"`
	Corrected bool     `json:"corrected,omitempty"`
	// Fingerprint digests the release's objects (see Fingerprint) as they
	// were when last applied by Helm or found in their desired state by a
	// drift check, in the desired state Digest names (a record of another
	// digest is not used). While the live objects give the same fingerprint,
	// nothing a drift check compares has changed, so the next check skips its
	// dry runs. It is a cache: WriteState drops it when the record would not fit
	// otherwise. (Records of earlier versions held per-object
	// resourceVersions under "checked"; they are no longer read.)
	Fingerprint string `json:"fingerprint,omitempty"`
	// Versions digests the UIDs and resourceVersions of the same objects
	// when Fingerprint was taken, with what the drift check compared them
	// by (see Snapshot.Versions): while a metadata-only List gives the same,
	// not one of them was written since, and the next check reads no
	// object. A cache, dropped with Fingerprint.
	Versions string `json:"versions,omitempty"`
	// Healthy says tandem saw the revision in Revision healthy. A run killed
	// during its health wait leaves a deployed revision that was never seen
	// healthy; the next run must check it again rather than take it as done.
	Healthy bool `json:"healthy,omitempty"`
}

// StateConfigMapFor is the state record of the manifest with this ID: each
// manifest sharing a cluster keeps its own. The default manifest ("" or
// "default") keeps StateConfigMap, where every record was before manifests
// had IDs.
func StateConfigMapFor(manifestID string) string {
	if manifestID == "" || manifestID == "default" {
		return StateConfigMap
	}
	return StateConfigMap + "-" + manifestID
}

// ReadState returns the default manifest's recorded state, or (nil, nil)
// when none has been written yet.
func (c *Cluster) ReadState(ctx context.Context) (*State, error) { return c.ReadStateOf(ctx, "") }

// ReadStateOf returns the recorded state of the manifest with this ID, or
// (nil, nil) when none has been written yet.
func (c *Cluster) ReadStateOf(ctx context.Context, manifestID string) (*State, error) {
	name := StateConfigMapFor(manifestID)
	cm, err := c.clientset.CoreV1().ConfigMaps(SystemNamespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster %q: read state: %w", c.name, err)
	}
	s, err := DecodeState(cm)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: read state: configmap %s/%s: %w", c.name, SystemNamespace, name, err)
	}
	return s, nil
}

// WriteState records s in the state record of its manifest
// (StateConfigMapFor(s.ManifestID)), replacing what was there, with one
// server-side apply (creating SystemNamespace first if it is missing). The
// apply also removes a format 1 record this field manager wrote.
func (c *Cluster) WriteState(ctx context.Context, s State) error {
	b, trimmed, err := encodeState(s)
	if err != nil {
		return fmt.Errorf("cluster %q: write state: %w", c.name, err)
	}
	if trimmed {
		c.log.Warn("state record too large: dropped the drift-check cache; the next drift check dry-runs every object",
			"releases", len(s.Releases), "bytes", len(b))
	}
	cm := corev1ac.ConfigMap(StateConfigMapFor(s.ManifestID), SystemNamespace).
		WithLabels(map[string]string{"app.kubernetes.io/managed-by": "tandem"}).
		WithData(map[string]string{StateFormatKey: StateFormat}).
		WithBinaryData(map[string][]byte{StateGzipKey: b})
	err = c.inSystemNamespace(ctx, func() error {
		_, err := c.clientset.CoreV1().ConfigMaps(SystemNamespace).Apply(ctx, cm, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster %q: write state: %w", c.name, err)
	}
	return nil
}

// encodeState compresses s for binaryData[StateGzipKey]. When the result
// would not fit a ConfigMap it drops the Fingerprint caches, which only save dry
// runs, and says so with trimmed; if it still does not fit, that is an error.
func encodeState(s State) (b []byte, trimmed bool, err error) {
	b, err = gzipJSON(s)
	if err != nil || len(b) <= maxStateBytes {
		return b, false, err
	}
	full := len(b)
	rs := make([]ReleaseState, len(s.Releases))
	for i, r := range s.Releases {
		r.Fingerprint, r.Versions = "", ""
		rs[i] = r
	}
	s.Releases = rs
	if b, err = gzipJSON(s); err != nil {
		return nil, false, err
	}
	if len(b) > maxStateBytes {
		return nil, false, fmt.Errorf("the record of %d releases is %d bytes compressed (%d with the drift-check cache), over the %d a ConfigMap holds",
			len(s.Releases), len(b), full, maxStateBytes)
	}
	return b, true, nil
}

func gzipJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if err := json.NewEncoder(zw).Encode(v); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeState reads either format of the record from its ConfigMap (tests and
// tools that read a record they fetched themselves use it too).
func DecodeState(cm *corev1.ConfigMap) (*State, error) {
	var s State
	switch f := cm.Data[StateFormatKey]; f {
	case "": // format 1
		data, ok := cm.Data[StateKey]
		if !ok {
			return nil, fmt.Errorf("no %q", StateKey)
		}
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			return nil, fmt.Errorf("%s: %w", StateKey, err)
		}
	case StateFormat:
		data, ok := cm.BinaryData[StateGzipKey]
		if !ok {
			return nil, fmt.Errorf("no %q in binaryData", StateGzipKey)
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", StateGzipKey, err)
		}
		// One byte past the limit tells a record at the limit from one over it.
		js, err := io.ReadAll(io.LimitReader(zr, maxStateJSON+1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", StateGzipKey, err)
		}
		if len(js) > maxStateJSON {
			return nil, fmt.Errorf("%s: decompresses to more than %d MiB", StateGzipKey, maxStateJSON>>20)
		}
		if err := json.Unmarshal(js, &s); err != nil {
			return nil, fmt.Errorf("%s: %w", StateGzipKey, err)
		}
	default:
		return nil, fmt.Errorf("state format %q is not one this tandem reads (it reads 1 and %s): a newer tandem wrote it", f, StateFormat)
	}
	return &s, nil
}

// ensureNamespace creates a namespace unless it exists.
func (c *Cluster) ensureNamespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	_, err := c.clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %q: %w", name, err)
	}
	return nil
}
