package guard_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// message is what the guard's refusal must say: what to do instead.
const message = "tandem switchover --to green"

// TestGuardRefusesScaleUpOnStandby: on green (Standby) `kubectl scale`, a
// patch of spec.replicas and resuming a suspended CronJob are refused with
// the guard's message; the same on blue (Active) passes; a Deployment
// tandem does not manage scales freely on green.
func TestGuardRefusesScaleUpOnStandby(t *testing.T) {
	h := newHarness(t, "enforce")
	if !h.hasGuard(t, "green") || h.hasGuard(t, "blue") {
		t.Fatalf("guard on green %v, on blue %v: want only on green", h.hasGuard(t, "green"), h.hasGuard(t, "blue"))
	}
	dep := h.deployment(t, "green", "example", "example")

	res := h.until(t, "green", refused, "-n", "example", "scale", "deployment/"+dep, "--replicas=3", "--dry-run=server")
	if res.Code == 0 {
		t.Fatalf("kubectl scale --dry-run=server on green passed for %s: the guard never refused it", enforceWithin)
	}
	res = h.kubectl(t, "green", "-n", "example", "scale", "deployment/"+dep, "--replicas=3")
	if res.Code == 0 || !strings.Contains(res.Stderr, message) || !strings.Contains(res.Stderr, "example/"+dep) {
		t.Errorf("kubectl scale deployment/%s --replicas=3 on green: exit %d, want refused naming it and saying %q:\n%s", dep, res.Code, message, res.Stderr)
	}
	t.Logf("green refused kubectl scale: %s", strings.TrimSpace(res.Stderr))
	res = h.kubectl(t, "green", "-n", "example", "patch", "deployment", dep, "--type=merge", "-p", `{"spec":{"replicas":2}}`)
	if res.Code == 0 || !strings.Contains(res.Stderr, message) {
		t.Errorf("kubectl patch spec.replicas=2 on green: exit %d, want refused with %q:\n%s", res.Code, message, res.Stderr)
	}
	if n := h.replicas(t, "green", "example", dep); n != 0 {
		t.Errorf("green %s has %d replicas after the refused writes, want 0", dep, n)
	}
	// Scaling down and writes that keep zero are not the guard's business.
	if res := h.kubectl(t, "green", "-n", "example", "scale", "deployment/"+dep, "--replicas=0"); res.Code != 0 {
		t.Errorf("kubectl scale --replicas=0 on green: exit %d\n%s", res.Code, res.Stderr)
	}
	if res := h.kubectl(t, "green", "-n", "example", "annotate", "deployment", dep, "e2e.tandem.dev/touched=yes", "--overwrite"); res.Code != 0 {
		t.Errorf("kubectl annotate on green: exit %d\n%s", res.Code, res.Stderr)
	}

	cron := h.cronJob(t, "green", "shop", "orders-worker")
	res = h.kubectl(t, "green", "-n", "shop", "patch", "cronjob", cron, "--type=merge", "-p", `{"spec":{"suspend":false}}`)
	if res.Code == 0 || !strings.Contains(res.Stderr, message) {
		t.Errorf("kubectl patch cronjob %s suspend=false on green: exit %d, want refused with %q:\n%s", cron, res.Code, message, res.Stderr)
	}

	// A Deployment tandem does not hold is untouched by the guard.
	if res := h.kubectl(t, "green", "-n", "example", "create", "deployment", "e2e-own", "--image=registry.example/own:1", "--replicas=0"); res.Code != 0 {
		t.Fatalf("create e2e-own: %s", res.Stderr)
	}
	defer h.kubectl(t, "green", "-n", "example", "delete", "deployment", "e2e-own", "--wait=false")
	if res := h.kubectl(t, "green", "-n", "example", "scale", "deployment/e2e-own", "--replicas=2"); res.Code != 0 {
		t.Errorf("kubectl scale of a Deployment tandem does not manage on green: exit %d\n%s", res.Code, res.Stderr)
	}

	// Blue is Active: the same scale passes.
	bdep := h.deployment(t, "blue", "example", "example")
	was := h.replicas(t, "blue", "example", bdep)
	res = h.kubectl(t, "blue", "-n", "example", "scale", "deployment/"+bdep, "--replicas=3")
	if res.Code != 0 {
		t.Errorf("kubectl scale --replicas=3 on blue (Active): exit %d\n%s", res.Code, res.Stderr)
	}
	h.kubectl(t, "blue", "-n", "example", "scale", "deployment/"+bdep, "--replicas="+itoa(was))
}

// TestGuardWarn: with --standby-guard warn the scale passes, and kubectl
// prints the guard's message as a warning.
func TestGuardWarn(t *testing.T) {
	h := newHarness(t, "warn")
	dep := h.deployment(t, "green", "example", "example")
	warned := func(r e2etest.Result) bool { return r.Code == 0 && strings.Contains(r.Stderr, "Warning") }
	res := h.until(t, "green", warned, "-n", "example", "scale", "deployment/"+dep, "--replicas=2", "--dry-run=server")
	if !warned(res) {
		t.Fatalf("with warn, kubectl scale --dry-run=server on green: exit %d, want a pass with a warning:\n%s", res.Code, res.Stderr)
	}
	res = h.kubectl(t, "green", "-n", "example", "scale", "deployment/"+dep, "--replicas=2")
	if res.Code != 0 || !strings.Contains(res.Stderr, "Warning") || !strings.Contains(res.Stderr, message) {
		t.Errorf("with warn, kubectl scale on green: exit %d, want 0 with a warning saying %q:\n%s", res.Code, message, res.Stderr)
	}
	if n := h.replicas(t, "green", "example", dep); n != 2 {
		t.Errorf("with warn, green %s has %d replicas, want 2", dep, n)
	}
	h.kubectl(t, "green", "-n", "example", "scale", "deployment/"+dep, "--replicas=0")
}

// TestGuardOffRemovesIt: --standby-guard off removes the guard, and
// without it the same scale passes (what every Standby allowed before).
func TestGuardOffRemovesIt(t *testing.T) {
	h := newHarness(t, "enforce")
	res := h.reconcile(t, "--standby-guard", "off")
	if res.Code != 0 {
		t.Fatalf("reconcile --standby-guard off: exit %d\n%s", res.Code, res.Stderr)
	}
	var rep reconciler.Report
	res.JSON(t, &rep)
	for _, c := range rep.Clusters {
		if c.Name == "green" && (c.Guard == nil || c.Guard.Action != reconciler.GuardRemove || c.Guard.Outcome != reconciler.OutcomeOK) {
			t.Errorf("green's guard report %+v, want remove ok", c.Guard)
		}
	}
	if h.hasGuard(t, "green") {
		t.Fatal("green still has the guard's binding")
	}
	dep := h.deployment(t, "green", "example", "example")
	passed := func(r e2etest.Result) bool { return r.Code == 0 }
	if res := h.until(t, "green", passed, "-n", "example", "scale", "deployment/"+dep, "--replicas=3", "--dry-run=server"); res.Code != 0 {
		t.Errorf("with the guard off, kubectl scale --dry-run=server on green: exit %d\n%s", res.Code, res.Stderr)
	}
	res = h.reconcile(t, "--dry-run")
	res.JSON(t, &rep)
	for _, c := range rep.Clusters {
		if c.Name == "green" && (c.Guard == nil || c.Guard.Action != reconciler.GuardInstall || c.Guard.Outcome != reconciler.OutcomePlanned) {
			t.Errorf("dry run: green's guard report %+v, want a planned install", c.Guard)
		}
	}
	if h.hasGuard(t, "green") {
		t.Error("a dry run installed the guard")
	}
}

// TestGuardSwitchoverAndBack: with the guard on, a switchover to green and
// one back both complete; in between the guard is on blue (now Standby)
// and gone from green, so a scale on blue is refused and on green passes.
//
// Green's guard is written as if by another tandem (a CI runner's user):
// the switchover removes a target's guard before warming it, so tandem's
// warming writes (which drop the markers) never depend on whom the guard
// lets drop them (review of issue 12, finding 1 (b)).
func TestGuardSwitchoverAndBack(t *testing.T) {
	h := newHarness(t, "enforce")
	h.setGuardWriter(t, "green", "system:serviceaccount:ci:tandem-runner")
	h.switchTo(t, "green")
	res := h.reconcile(t)
	if res.Code != 0 {
		t.Fatalf("switchover to green with the guard on: exit %d\n%s", res.Code, res.Stderr)
	}
	if h.hasGuard(t, "green") || !h.hasGuard(t, "blue") {
		t.Errorf("after the switchover: guard on green %v, on blue %v; want only on blue", h.hasGuard(t, "green"), h.hasGuard(t, "blue"))
	}
	bdep := h.deployment(t, "blue", "example", "example")
	res = h.until(t, "blue", refused, "-n", "example", "scale", "deployment/"+bdep, "--replicas=3", "--dry-run=server")
	if res.Code == 0 || !strings.Contains(res.Stderr, "tandem switchover --to blue") {
		t.Errorf("kubectl scale on blue (now Standby): exit %d, want refused with its message:\n%s", res.Code, res.Stderr)
	}
	gdep := h.deployment(t, "green", "example", "example")
	if res := h.kubectl(t, "green", "-n", "example", "scale", "deployment/"+gdep, "--replicas=3", "--dry-run=server"); res.Code != 0 {
		t.Errorf("kubectl scale on green (now Active): exit %d\n%s", res.Code, res.Stderr)
	}

	h.switchTo(t, "blue")
	res = h.reconcile(t)
	if res.Code != 0 {
		t.Fatalf("switchover back to blue with the guard on: exit %d\n%s", res.Code, res.Stderr)
	}
	if !h.hasGuard(t, "green") || h.hasGuard(t, "blue") {
		t.Errorf("after switching back: guard on green %v, on blue %v; want only on green", h.hasGuard(t, "green"), h.hasGuard(t, "blue"))
	}
}

// operator are kubectl's and helm's flags for a person other than tandem:
// the admin kubeconfig impersonating another user (tandem runs as the admin
// itself, and the guard lets only the user tandem writes as drop a marker).
var operator = []string{"--as=e2e-operator", "--as-group=system:masters"}

// TestGuardOnlyTandemDropsTheMarker (review of issue 12, finding 4): on
// green (Standby), someone who is not tandem may not get past the guard by
// dropping the marker first (`kubectl annotate … tandem.dev/active-replicas-`,
// then a patch of spec.replicas), nor with `helm rollback` to a revision
// rendered while green was Active (one 3-way patch that drops the marker
// and raises replicas); tandem's own writes that drop it still pass: a
// release turned standby: keep, and back.
func TestGuardOnlyTandemDropsTheMarker(t *testing.T) {
	h := newHarness(t, "enforce")
	dep := h.deployment(t, "green", "example", "example")
	as := func(args ...string) []string { return append(append([]string{}, operator...), args...) }

	res := h.until(t, "green", refused, as("-n", "example", "annotate", "deployment", dep, "tandem.dev/active-replicas-", "--dry-run=server")...)
	if res.Code == 0 || !strings.Contains(res.Stderr, message) {
		t.Fatalf("kubectl annotate %s tandem.dev/active-replicas- on green as another user: exit %d, want refused with %q:\n%s", dep, res.Code, message, res.Stderr)
	}
	t.Logf("green refused dropping the marker: %s", strings.TrimSpace(res.Stderr))
	res = h.kubectl(t, "green", as("-n", "example", "patch", "deployment", dep, "--type=json", "-p",
		`[{"op":"remove","path":"/metadata/annotations/tandem.dev~1active-replicas"},{"op":"replace","path":"/spec/replicas","value":2}]`)...)
	if res.Code == 0 || !strings.Contains(res.Stderr, message) {
		t.Errorf("one patch dropping the marker and raising replicas on green: exit %d, want refused with %q:\n%s", res.Code, message, res.Stderr)
	}

	// helm rollback of green to a revision from when it was Active.
	rev := h.activeEraRevision(t, "example", "example")
	if rev == 0 {
		// Run alone: make green's history hold one.
		h.switchTo(t, "green")
		if res := h.reconcile(t); res.Code != 0 {
			t.Fatalf("switchover to green: exit %d\n%s", res.Code, res.Stderr)
		}
		h.switchTo(t, "blue")
		if res := h.reconcile(t); res.Code != 0 {
			t.Fatalf("switchover back to blue: exit %d\n%s", res.Code, res.Stderr)
		}
		if rev = h.activeEraRevision(t, "example", "example"); rev == 0 {
			t.Fatal("green's history of example has no revision without the marker after a switchover and back")
		}
	}
	res = h.helm(t, "green", "--kube-as-user=e2e-operator", "--kube-as-group=system:masters", "-n", "example", "rollback", "example", strconv.Itoa(rev))
	if res.Code == 0 {
		t.Errorf("helm rollback example %d (rendered while green was Active) on green as another user: passed\n%s", rev, res.Stdout)
	} else if !strings.Contains(res.Stderr, message) {
		t.Errorf("helm rollback example %d on green: exit %d, want the guard's message %q:\n%s", rev, res.Code, message, res.Stderr)
	}
	t.Logf("green refused helm rollback to revision %d: %s", rev, strings.TrimSpace(res.Stderr))
	if n := h.replicas(t, "green", "example", dep); n != 0 {
		t.Errorf("green %s has %d replicas after the refused writes, want 0", dep, n)
	}
	// tandem puts the release back where the failed rollback left it.
	if res := h.reconcile(t); res.Code != 0 {
		t.Fatalf("reconcile after the refused helm rollback: exit %d\n%s", res.Code, res.Stderr)
	}

	// tandem's own write that drops the marker: example turned standby: keep,
	// with the guard last written by another tandem: the run names itself
	// the guard's writer before it writes a release.
	h.setGuardWriter(t, "green", "system:serviceaccount:ci:tandem-runner")
	h.repo.Replace(t, "tandem.yaml", "    wave: 1\n    needs: [platform]\n", "    wave: 1\n    needs: [platform]\n    standby: keep\n")
	h.repo.Commit(t, "example keeps running on the Standby")
	if res := h.reconcile(t); res.Code != 0 {
		t.Fatalf("reconcile of example turned standby: keep with the guard on: exit %d\n%s", res.Code, res.Stderr)
	}
	if n := h.replicas(t, "green", "example", dep); n == 0 {
		t.Errorf("green %s has 0 replicas after standby: keep", dep)
	}
	h.repo.Replace(t, "tandem.yaml", "    needs: [platform]\n    standby: keep\n", "    needs: [platform]\n")
	h.repo.Commit(t, "example scaled to zero on the Standby again")
	if res := h.reconcile(t); res.Code != 0 {
		t.Fatalf("reconcile of example back to scale-to-zero: exit %d\n%s", res.Code, res.Stderr)
	}
	if n := h.replicas(t, "green", "example", dep); n != 0 {
		t.Errorf("green %s has %d replicas after going back to scale-to-zero, want 0", dep, n)
	}
}

// scaledObjectCRD is a minimal KEDA ScaledObject CRD (the guard's rule
// keys on annotations only, not on KEDA's schema).
const scaledObjectCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: scaledobjects.keda.sh
spec:
  group: keda.sh
  names: {kind: ScaledObject, listKind: ScaledObjectList, plural: scaledobjects, singular: scaledobject}
  scope: Namespaced
  versions:
    - name: v1alpha1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// TestGuardKEDAPausedStays: on green, a ScaledObject that tandem paused
// (tandem.dev/held) may not drop autoscaling.keda.sh/paused-replicas "0".
func TestGuardKEDAPausedStays(t *testing.T) {
	h := newHarness(t, "enforce")
	crd := filepath.Join(t.TempDir(), "crd.yaml")
	if err := os.WriteFile(crd, []byte(scaledObjectCRD), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := h.kubectl(t, "green", "apply", "-f", crd); res.Code != 0 {
		t.Fatalf("install the ScaledObject CRD: %s", res.Stderr)
	}
	so := filepath.Join(t.TempDir(), "so.yaml")
	if err := os.WriteFile(so, []byte(`apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: e2e-worker
  namespace: example
  annotations: {autoscaling.keda.sh/paused-replicas: "0", tandem.dev/held: standby}
spec: {scaleTargetRef: {name: example}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	established := func(r e2etest.Result) bool { return r.Code == 0 }
	if res := h.until(t, "green", established, "apply", "-f", so); res.Code != 0 {
		t.Fatalf("create a paused ScaledObject: %s", res.Stderr)
	}
	defer h.kubectl(t, "green", "-n", "example", "delete", "scaledobject", "e2e-worker", "--wait=false")
	res := h.until(t, "green", refused, "-n", "example", "annotate", "scaledobject", "e2e-worker", "autoscaling.keda.sh/paused-replicas-", "--dry-run=server")
	if res.Code == 0 || !strings.Contains(res.Stderr, message) {
		t.Errorf("unpausing a held ScaledObject on green: exit %d, want refused with %q:\n%s", res.Code, message, res.Stderr)
	}
	if res := h.kubectl(t, "green", "-n", "example", "annotate", "scaledobject", "e2e-worker", "e2e.tandem.dev/touched=yes"); res.Code != 0 {
		t.Errorf("annotating a held ScaledObject (still paused) on green: exit %d\n%s", res.Code, res.Stderr)
	}
}
