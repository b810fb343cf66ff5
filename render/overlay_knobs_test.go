package render

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// knobsInput holds every kind the overlay turns a knob on.
const knobsInput = `---
# Source: web/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {replicas: 3}
---
# Source: web/templates/cronjob.yaml
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec: {schedule: "0 2 * * *"}
---
# Source: web/templates/ingress.yaml
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, annotations: {external-dns.alpha.kubernetes.io/hostname: www.example}}
---
# Source: web/templates/scaledobject.yaml
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: web}
`

func runString(t *testing.T, o Overlay, in string) string {
	t.Helper()
	out, err := o.Run(bytes.NewBufferString(in))
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// Plain Active and Standby renders must not change when knobs are given
// that say the same thing, and nil knobs must be what the roles always
// rendered: a changed byte would upgrade every release once.
func TestOverlayKnobsEqualPlainRoles(t *testing.T) {
	base := Overlay{Release: "web", Cluster: "green", DNSPrefix: prefix, ActiveWeight: 100}
	for _, tc := range []struct {
		name  string
		role  Role
		scale bool
		knobs Knobs
	}{
		{"active", RoleActive, true, Knobs{Weight: 100}},
		{"active keep", RoleActive, false, Knobs{Weight: 100}},
		{"standby scale-to-zero", RoleStandby, true, Knobs{ScaleDown: true, SuspendCronJobs: true}},
		// standby: keep runs the workloads, but a CronJob never runs on a
		// Standby: a singleton (a billing job) must not run on two clusters.
		{"standby keep", RoleStandby, false, Knobs{SuspendCronJobs: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := base
			plain.Role, plain.ScaleToZero = tc.role, tc.scale
			if got := plain.Effective(); got != tc.knobs {
				t.Fatalf("Effective() = %+v, want %+v", got, tc.knobs)
			}
			knobbed := plain
			k := tc.knobs
			knobbed.Knobs = &k
			if diff := cmp.Diff(runString(t, plain, knobsInput), runString(t, knobbed, knobsInput)); diff != "" {
				t.Errorf("knobs equal to the role render differently (-plain +knobs):\n%s", diff)
			}
		})
	}
}

// The plain Standby render is pinned byte for byte: Knobs must not have
// changed what existed before them.
func TestOverlayPlainStandbyGolden(t *testing.T) {
	o := Overlay{Release: "web", Cluster: "green", Role: RoleStandby, ScaleToZero: true, DNSPrefix: prefix, ActiveWeight: 100}
	want := `---
# Source: web/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  annotations:
    tandem.dev/active-replicas: "3"
  labels:
    tandem.dev/cluster: green
    tandem.dev/release: web
    tandem.dev/role: standby
  name: web
spec:
  replicas: 0
---
# Source: web/templates/cronjob.yaml
apiVersion: batch/v1
kind: CronJob
metadata:
  annotations:
    tandem.dev/held: standby
  labels:
    tandem.dev/cluster: green
    tandem.dev/release: web
    tandem.dev/role: standby
  name: nightly
spec:
  schedule: 0 2 * * *
  suspend: true
---
# Source: web/templates/ingress.yaml
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  annotations:
    external-dns.alpha.kubernetes.io/aws-weight: "0"
    external-dns.alpha.kubernetes.io/hostname: www.example
    external-dns.alpha.kubernetes.io/set-identifier: green
  labels:
    tandem.dev/cluster: green
    tandem.dev/release: web
    tandem.dev/role: standby
  name: web
---
# Source: web/templates/scaledobject.yaml
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  annotations:
    autoscaling.keda.sh/paused-replicas: "0"
    tandem.dev/held: standby
  labels:
    tandem.dev/cluster: green
    tandem.dev/release: web
    tandem.dev/role: standby
  name: web
`
	if diff := cmp.Diff(want, runString(t, o, knobsInput)); diff != "" {
		t.Errorf("plain standby render changed (-want +got):\n%s", diff)
	}
}

// Each knob turns exactly its own fields: a switchover phase is an overlay.
func TestOverlayKnobsTurnOnlyTheirFields(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		knobs                      Knobs
		replicas                   any
		suspend, weight, kedaPause any
	}{
		{"warm: workloads up, weight 0, cronjobs suspended", Knobs{SuspendCronJobs: true}, float64(3), true, "0", nil},
		{"open: weight up", Knobs{SuspendCronJobs: true, Weight: 100}, float64(3), true, "100", nil},
		{"singletons resumed", Knobs{Weight: 100}, float64(3), nil, "100", nil},
		{"closed source: weight 0, still running", Knobs{}, float64(3), nil, "0", nil},
		{"cooled", Knobs{ScaleDown: true, SuspendCronJobs: true}, float64(0), true, "0", "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.knobs
			o := Overlay{Release: "web", Cluster: "green", Role: RoleStandby, ScaleToZero: true, DNSPrefix: prefix, ActiveWeight: 100, Knobs: &k}
			docs, err := splitDocuments([]byte(runString(t, o, knobsInput)))
			if err != nil || len(docs) != 4 {
				t.Fatalf("want 4 documents: %v", err)
			}
			got := []any{
				field(t, docs[0].body, "spec", "replicas"),
				field(t, docs[1].body, "spec", "suspend"),
				field(t, docs[2].body, "metadata", "annotations", prefix+"aws-weight"),
				field(t, docs[3].body, "metadata", "annotations", AnnotationKEDAPaused),
			}
			want := []any{tc.replicas, tc.suspend, tc.weight, tc.kedaPause}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("replicas, suspend, weight, keda pause (-want +got):\n%s", diff)
			}
		})
	}
}

// field returns the value at path in a YAML document, nil if absent.
func field(t *testing.T, body []byte, path ...string) any {
	t.Helper()
	var cur any = map[string]any{}
	if err := yaml.Unmarshal(body, &cur); err != nil {
		t.Fatal(err)
	}
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}
