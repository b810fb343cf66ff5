package clusters

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestAPIErrorsEchoingSecretsAreScrubbed (issue 11 item 4): an admission
// policy that refuses a Secret with a message echoing its value (here a
// ValidatingAdmissionPolicy's messageExpression on a real kube-apiserver; a
// webhook can do the same) makes the API server return that value in its
// 422. The install's error, and a server-side dry run's, must name the
// refusal without the value, plain or base64.
func TestAPIErrorsEchoingSecretsAreScrubbed(t *testing.T) {
	ctx, c, e := connect(t)
	cs := adminClient(t, e)
	ns := testNamespace(t)
	const password = "echoed-hunter2-secret"
	name := "tandem-echo-" + ns
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression:        "false",
				MessageExpression: "'refused: password ' + string(object.data.password)",
			}},
		},
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, name, metav1.DeleteOptions{})
	})
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
				ObjectSelector:    &metav1.LabelSelector{MatchLabels: map[string]string{"e2e.tandem.dev/echo": "true"}},
			},
		},
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, name, metav1.DeleteOptions{})
	})
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The policy takes effect once the API server's informer has it: wait
	// until a plain client sees the echo, so the test proves the echo is real.
	probe := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns, Labels: map[string]string{"e2e.tandem.dev/echo": "true"}},
		StringData: map[string]string{"password": password}}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := cs.CoreV1().Secrets(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		// CEL sees the data as its base64 text: the echo is that.
		if err != nil && strings.Contains(err.Error(), "refused: password "+base64.StdEncoding.EncodeToString([]byte(password))) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy never echoed the value; last error: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}

	leaks := []string{password, base64.StdEncoding.EncodeToString([]byte(password))}
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: want the policy's refusal", what)
		}
		for _, v := range leaks {
			if strings.Contains(err.Error(), v) {
				t.Errorf("%s: the error shows the Secret value %q: %v", what, v, err)
			}
		}
		if !strings.Contains(err.Error(), "refused: password (hidden)") {
			t.Errorf("%s: the error should still say what refused it: %v", what, err)
		}
	}
	_, err := c.Install(ctx, ReleaseRequest{Name: "echo", Namespace: ns, Chart: loadChart(t, "secret-echoed-by-admission"),
		Values: map[string]any{"password": password}})
	check("install", err)

	secret := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret",
		"metadata":   map[string]any{"name": "echo-creds", "namespace": ns, "labels": map[string]any{"e2e.tandem.dev/echo": "true"}},
		"stringData": map[string]any{"password": password}}}
	_, err = c.DryRun(ctx, nil, ns, "echo", []*unstructured.Unstructured{secret}, "tandem")
	check("dry run", err)
	err = c.Apply(ctx, ns, "echo", []*unstructured.Unstructured{secret}, "tandem")
	check("apply", err)
}
