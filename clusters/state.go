package clusters

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// StateConfigMap is the ConfigMap in SystemNamespace that records where a
// cluster stands; its data key StateKey holds State as JSON.
const (
	StateConfigMap = "tandem-state"
	StateKey       = "state.json"
)

// State is what tandem last did to a cluster, so `tandem status` and a
// restarted daemon know where things stand. The JSON field names are a
// stored format: they may be added to, never renamed.
type State struct {
	Cluster   string         `json:"cluster"`
	Role      string         `json:"role"`
	Commit    string         `json:"commit"`
	Ref       string         `json:"ref,omitempty"`
	AppliedAt time.Time      `json:"appliedAt"`
	Releases  []ReleaseState `json:"releases"`
	LastError string         `json:"lastError,omitempty"`
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
	// Checked maps each object ("group/Kind/namespace/name") that the last
	// drift check found in its desired state to its resourceVersion then. An
	// object whose resourceVersion has not moved since cannot have drifted,
	// so the next check skips its dry run.
	Checked map[string]string `json:"checked,omitempty"`
}

// ReadState returns the cluster's recorded state, or (nil, nil) when none
// has been written yet.
func (c *Cluster) ReadState(ctx context.Context) (*State, error) {
	cm, err := c.clientset.CoreV1().ConfigMaps(SystemNamespace).Get(ctx, StateConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster %q: read state: %w", c.name, err)
	}
	data, ok := cm.Data[StateKey]
	if !ok {
		return nil, fmt.Errorf("cluster %q: read state: configmap %s/%s has no %q", c.name, SystemNamespace, StateConfigMap, StateKey)
	}
	var s State
	if err := json.Unmarshal([]byte(data), &s); err != nil {
		return nil, fmt.Errorf("cluster %q: read state: %w", c.name, err)
	}
	return &s, nil
}

// WriteState records s, replacing what was there, with one server-side
// apply (creating SystemNamespace first if it is missing).
func (c *Cluster) WriteState(ctx context.Context, s State) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("cluster %q: write state: %w", c.name, err)
	}
	cm := corev1ac.ConfigMap(StateConfigMap, SystemNamespace).
		WithLabels(map[string]string{"app.kubernetes.io/managed-by": "tandem"}).
		WithData(map[string]string{StateKey: string(b)})
	err = c.inSystemNamespace(ctx, func() error {
		_, err := c.clientset.CoreV1().ConfigMaps(SystemNamespace).Apply(ctx, cm, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster %q: write state: %w", c.name, err)
	}
	return nil
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
