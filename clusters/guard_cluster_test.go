package clusters

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

// guardEnforceWithin bounds how long the API server takes to enforce a new
// or changed policy (its policy source refreshes about every second).
const guardEnforceWithin = 30 * time.Second

// operator is a clientset that is not tandem: the admin kubeconfig
// impersonating another user, with the admin's powers.
func operator(t *testing.T, e *localcluster.Env) kubernetes.Interface {
	t.Helper()
	cfg, err := e.RESTConfig(testCluster)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Impersonate.UserName = "e2e-operator"
	cfg.Impersonate.Groups = []string{"system:masters", "system:authenticated"}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// untilRefused retries a server-side dry run of a write until the API
// server refuses it (a new policy takes it a moment to enforce).
func untilRefused(t *testing.T, write func(dryRun []string) error) error {
	t.Helper()
	deadline := time.Now().Add(guardEnforceWithin)
	for {
		err := write([]string{metav1.DryRunAll})
		if err != nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestGuardOnlyTandemDropsTheMarker (review of issue 12, finding 4): with
// the guard in force, someone who is not tandem may not drop a marker from
// a held object — `kubectl annotate …-`, or one patch that drops it and
// raises replicas, as `helm rollback` to an Active-era revision does —
// nor raise a listed workload that no longer carries it; tandem's own
// user (the parameter's writer) may, as its warm, rollback and
// standby: keep writes do. A Deployment the guard does not list is free.
func TestGuardOnlyTandemDropsTheMarker(t *testing.T) {
	ctx, c, e := connect(t)
	admin, op := adminClient(t, e), operator(t, e)
	ns := testNamespace(t)
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	const id = "guard-marker"
	t.Cleanup(func() { _, _ = c.RemoveGuard(context.Background(), id) })

	held := map[string]string{GuardReplicasAnnotation: "3"}
	labels := map[string]string{"app": "web"}
	dep := func(name string, ann map[string]string) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: ann},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](0), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example/web:1"}}}}}}
	}
	for _, d := range []*appsv1.Deployment{dep("web", held), dep("api", held), dep("free", nil)} {
		if _, err := admin.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cron := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: ns, Annotations: map[string]string{GuardHeldAnnotation: "standby"}},
		Spec: batchv1.CronJobSpec{Schedule: "0 2 * * *", Suspend: ptr.To(true), JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "job", Image: "registry.example/job:1"}}}}}}}}
	if _, err := admin.BatchV1().CronJobs(ns).Create(ctx, cron, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	user, err := c.Username(ctx)
	if err != nil {
		t.Fatal(err)
	}
	webKey, _ := GuardKey(ns, "deployments", "web")
	apiKey, _ := GuardKey(ns, "deployments", "api")
	g := Guard{Cluster: "blue", Writer: user, Scaled: map[string]string{webKey: ns + "/web", apiKey: ns + "/web"}}
	if err := c.ApplyGuard(ctx, id, g); err != nil {
		t.Fatal(err)
	}

	patch := func(cs kubernetes.Interface, name, body string, dryRun []string) error {
		_, err := cs.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, []byte(body), metav1.PatchOptions{DryRun: dryRun})
		return err
	}
	const (
		drop        = `{"metadata":{"annotations":{"tandem.dev/active-replicas":null}}}`
		dropAndRise = `{"metadata":{"annotations":{"tandem.dev/active-replicas":null}},"spec":{"replicas":3}}`
		rise        = `{"spec":{"replicas":2}}`
	)
	err = untilRefused(t, func(dr []string) error { return patch(op, "web", drop, dr) })
	if err == nil || !strings.Contains(err.Error(), "tandem switchover --to blue") {
		t.Fatalf("another user drops the marker: err = %v, want the guard's refusal", err)
	}
	t.Logf("refused: %v", err)
	// The refusal says whom the guard lets through and who asked (a tandem
	// running as another user than the guard names must be able to tell),
	// and how to break glass (review revguard2).
	for _, w := range []string{"(" + user + ")", "came from e2e-operator", "kubectl delete validatingadmissionpolicybinding " + GuardNameFor(id), "--standby-guard off"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the refusal of a marker drop does not say %q:\n%v", w, err)
		}
	}
	if err := patch(op, "web", dropAndRise, nil); err == nil {
		t.Error("another user drops the marker and raises replicas in one patch (helm rollback to an Active-era revision): passed")
	}
	// The marker gone (tandem dropped it), the list still holds it.
	if err := patch(admin, "api", drop, nil); err != nil {
		t.Fatalf("tandem's user drops the marker: %v", err)
	}
	if err := patch(op, "api", rise, nil); err == nil {
		t.Error("another user raises a listed Deployment without the marker: passed")
	}
	if err := patch(admin, "web", dropAndRise, nil); err != nil {
		t.Errorf("tandem's user drops the marker and raises replicas (its warm or rollback write): %v", err)
	}
	if err := patch(op, "free", rise, nil); err != nil {
		t.Errorf("another user scales a Deployment the guard does not hold: %v", err)
	}
	if err := patch(op, "api", `{"metadata":{"labels":{"touched":"yes"}}}`, nil); err != nil {
		t.Errorf("another user writes a listed Deployment at zero: %v", err)
	}

	resume := func(cs kubernetes.Interface) error {
		_, err := cs.BatchV1().CronJobs(ns).Patch(ctx, "nightly", types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"tandem.dev/held":null}},"spec":{"suspend":false}}`), metav1.PatchOptions{})
		return err
	}
	if err := resume(op); err == nil {
		t.Error("another user drops tandem.dev/held and resumes a CronJob: passed")
	}
	if err := resume(admin); err != nil {
		t.Errorf("tandem's user resumes a held CronJob (a switchover's phase 4): %v", err)
	}
	for _, n := range []string{"web", "api"} {
		d, err := admin.AppsV1().Deployments(ns).Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := int32(0)
		if n == "web" {
			want = 3 // tandem's own write
		}
		if *d.Spec.Replicas != want {
			t.Errorf("%s has %d replicas, want %d", n, *d.Spec.Replicas, want)
		}
	}
}

// TestGuardHandEditIsRewritten (review of issue 12, 7): a policy or binding
// someone edited by hand (failurePolicy, match rules, actions) reads as
// edited, and ApplyGuard writes it whole again, dropping fields tandem
// never sets.
func TestGuardHandEditIsRewritten(t *testing.T) {
	ctx, c, e := connect(t)
	admin := adminClient(t, e)
	const id = "guard-edit"
	name := GuardNameFor(id)
	t.Cleanup(func() { _, _ = c.RemoveGuard(context.Background(), id) })
	want := Guard{Cluster: "blue", Writer: "tandem", Scaled: map[string]string{"shop.deployments.web": "shop/web"}, PolicyVersion: GuardPolicyVersion()}
	if err := c.ApplyGuard(ctx, id, want); err != nil {
		t.Fatal(err)
	}
	read := func() *Guard {
		t.Helper()
		g, err := c.ReadGuard(ctx, id)
		if err != nil || g == nil {
			t.Fatalf("ReadGuard: %v, %v", g, err)
		}
		return g
	}
	if g := read(); !g.Equal(&want) {
		t.Fatalf("as written: %+v, want %+v", g, want)
	}
	adm := admin.AdmissionregistrationV1()
	for _, edit := range []struct {
		what  string
		apply func() error
	}{
		{"policy failurePolicy", func() error {
			_, err := adm.ValidatingAdmissionPolicies().Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"failurePolicy":"Fail"}}`), metav1.PatchOptions{})
			return err
		}},
		{"policy validations", func() error {
			_, err := adm.ValidatingAdmissionPolicies().Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"validations":[{"expression":"true"}]}}`), metav1.PatchOptions{})
			return err
		}},
		{"binding matchResources", func() error {
			_, err := adm.ValidatingAdmissionPolicyBindings().Patch(ctx, name, types.MergePatchType,
				[]byte(`{"spec":{"matchResources":{"namespaceSelector":{"matchLabels":{"nobody":"here"}}}}}`), metav1.PatchOptions{})
			return err
		}},
		{"parameter", func() error {
			_, err := admin.CoreV1().ConfigMaps(SystemNamespace).Patch(ctx, name, types.MergePatchType, []byte(`{"data":{"shop.deployments.web":null,"writer":"mallory"}}`), metav1.PatchOptions{})
			return err
		}},
	} {
		if err := edit.apply(); err != nil {
			t.Fatalf("%s: %v", edit.what, err)
		}
		if g := read(); g.Equal(&want) {
			t.Errorf("%s edited by hand: ReadGuard still equals what tandem writes", edit.what)
		}
		if err := c.ApplyGuard(ctx, id, want); err != nil {
			t.Fatal(err)
		}
		if g := read(); !g.Equal(&want) {
			t.Errorf("%s: rewritten, ReadGuard = %+v, want %+v", edit.what, g, want)
		}
	}
	p, err := adm.ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.FailurePolicy == nil || *p.Spec.FailurePolicy != admissionv1.Ignore || len(p.Spec.Validations) < 2 {
		t.Errorf("policy after the rewrite: failurePolicy %v, %d validations", p.Spec.FailurePolicy, len(p.Spec.Validations))
	}
	b, err := adm.ValidatingAdmissionPolicyBindings().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mr := b.Spec.MatchResources; mr != nil && mr.NamespaceSelector != nil && len(mr.NamespaceSelector.MatchLabels) > 0 {
		t.Errorf("binding after the rewrite keeps the hand-added namespaceSelector %v", mr.NamespaceSelector)
	}
}
