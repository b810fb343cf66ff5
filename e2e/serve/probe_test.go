package serve_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
)

// The probe chart: a Deployment whose rollout a test steers. hook: true adds
// a pre-upgrade hook Job whose pod no node accepts, so an upgrade stays
// pending-upgrade in Helm's storage, a run in flight, until the release's
// timeout; generation is stamped on the pod template, so changing it is a
// change with a rollout behind it. (As e2e/reconcile's probe chart; written
// from here so this package has no testdata to keep in step.)
var probeChart = map[string]string{
	"Chart.yaml": `apiVersion: v2
name: probe
description: A Deployment whose upgrade a test can make hang in a pre-upgrade hook.
type: application
version: 0.1.0
`,
	"values.yaml": `replicaCount: 1
generation: "0"
hook: false
`,
	"templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels:
    app.kubernetes.io/name: probe
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: probe
        app.kubernetes.io/instance: {{ .Release.Name }}
      annotations:
        e2e.tandem.dev/generation: {{ .Values.generation | quote }}
    spec:
      containers:
        - name: app
          image: registry.local/e2e/probe:1.0.0
`,
	"templates/hook.yaml": `{{- if .Values.hook }}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-pre-upgrade
  annotations:
    helm.sh/hook: pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      nodeSelector:
        e2e.tandem.dev/no-such-node: "true"
      containers:
        - name: migrate
          image: registry.local/e2e/probe:1.0.0
          args: ["migrate"]
{{- end }}
`,
}

// annGeneration is the probe chart's pod template annotation.
const annGeneration = "e2e.tandem.dev/generation"

// probeRelease is the one release of a probe manifest, "slow".
const probeRelease = "slow"

// probeRemote is a manifest repository of its own ID holding one release of
// the probe chart, slow in namespace, on blue (Active) and green (Standby),
// at generation 1 without a hook, with the given release timeout.
func (h *harness) probeRemote(t *testing.T, name, id, namespace, timeout string) *remote {
	t.Helper()
	repo := &e2etest.ManifestRepo{Dir: filepath.Join(t.TempDir(), "manifest")}
	for rel, content := range probeChart {
		repo.Write(t, filepath.Join("charts", "probe", rel), content)
	}
	writeProbeManifest(t, repo, id, namespace, timeout)
	setProbe(t, repo, 1, false)
	return h.newRemote(t, name, repo)
}

// writeProbeManifest writes tandem.yaml of a probe manifest.
func writeProbeManifest(t *testing.T, repo *e2etest.ManifestRepo, id, namespace, timeout string) {
	t.Helper()
	repo.Write(t, "tandem.yaml", fmt.Sprintf(`id: %s
clusters:
  - name: blue
    role: active
  - name: green
    role: standby
releases:
  - name: %s
    namespace: %s
    chart: ./charts/probe
    values: [values/slow.yaml]
    wave: 0
    timeout: %s
`, id, probeRelease, namespace, timeout))
}

// setProbe sets the probe release's generation and hook.
func setProbe(t *testing.T, repo *e2etest.ManifestRepo, generation int, hook bool) {
	t.Helper()
	repo.Write(t, "values/slow.yaml", fmt.Sprintf("generation: %q\nhook: %v\n", fmt.Sprint(generation), hook))
}

// probeHangs reports whether the probe release's latest revision on blue is
// pending-upgrade (Helm waits for the hook) while daemon d runs commit.
func (h *harness) probeHangs(t *testing.T, d *serveProc, namespace, commit string) error {
	t.Helper()
	s := h.storage(t, "blue", namespace)[releaseID{namespace, probeRelease}]
	if s.Status != "pending-upgrade" {
		return fmt.Errorf("blue %s/%s: revision %d %s, want pending-upgrade", namespace, probeRelease, s.Revision, s.Status)
	}
	st, err := d.tryStatus()
	if err != nil {
		return err
	}
	if st.Running == nil || st.Running.Commit != commit {
		return fmt.Errorf("daemon %s runs %+v, want %s", d.name, st.Running, short(commit))
	}
	return nil
}

// probeGeneration is the generation the probe's Deployment runs on a cluster.
func (h *harness) probeGeneration(t *testing.T, cluster, namespace string) string {
	t.Helper()
	return h.deployment(t, cluster, namespace, probeRelease).Spec.Template.Annotations[annGeneration]
}
