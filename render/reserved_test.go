package render

import (
	"context"
	"strings"
	"testing"
)

// A chart may not render objects under tandem's reserved names, in its
// namespace, nor admission policies unless the release opts in (review of
// issue 12, finding 2: a chart's ValidatingAdmissionPolicy named like the
// guard passed for it in the plan and could lock tandem out of an Active
// cluster). The error names the template, the release, the kind and the
// name; hooks are checked like templates.
func TestRenderRefusesReservedObjects(t *testing.T) {
	webhook := func(kind, groups, resources string) string {
		return "apiVersion: admissionregistration.k8s.io/v1\nkind: " + kind + "\nmetadata:\n  name: lock-out\nwebhooks:\n" +
			"- name: other.example.com\n  rules:\n  - apiGroups: [apps]\n    apiVersions: ['*']\n    operations: ['*']\n    resources: [deployments]\n" +
			"  clientConfig: {service: {name: gone, namespace: x}}\n  sideEffects: None\n  admissionReviewVersions: [v1]\n" +
			"- name: lock-out.example.com\n  failurePolicy: Fail\n  rules:\n  - apiGroups: " + groups + "\n    apiVersions: ['*']\n    operations: ['*']\n    resources: " + resources + "\n" +
			"  clientConfig: {service: {name: gone, namespace: x}}\n  sideEffects: None\n  admissionReviewVersions: [v1]\n"
	}
	const (
		vap     = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: %s\nspec:\n  failurePolicy: Fail\n  matchConstraints:\n    resourceRules:\n    - apiGroups: [coordination.k8s.io]\n      apiVersions: ['*']\n      operations: ['*']\n      resources: [leases]\n  validations:\n  - expression: 'false'\n"
		binding = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata:\n  name: lock-out\nspec:\n  policyName: lock-out\n  validationActions: [Deny]\n"
		mutate  = "apiVersion: admissionregistration.k8s.io/v1beta1\nkind: MutatingAdmissionPolicy\nmetadata:\n  name: rewrite\n"
		cm      = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\n"
		ns      = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tandem-system\n"
		hook    = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tandem-standby-guard\n  annotations:\n    helm.sh/hook: pre-install\n"
	)
	for _, tc := range []struct {
		name, template, hook string
		allow                bool
		want                 []string // in the error; none: it renders
	}{
		{name: "guard-named policy", template: strings.Replace(vap, "%s", "tandem-standby-guard", 1),
			want: []string{"reserved/templates/object.yaml", "release ns/r", "ValidatingAdmissionPolicy tandem-standby-guard", ReservedNamePrefix}},
		{name: "guard-named policy, opted in", template: strings.Replace(vap, "%s", "tandem-standby-guard-prod", 1), allow: true,
			want: []string{"reserved/templates/object.yaml", "ValidatingAdmissionPolicy tandem-standby-guard-prod", ReservedNamePrefix}},
		{name: "guard-named ConfigMap elsewhere", template: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tandem-standby-guard\n",
			want: []string{"ConfigMap tandem-standby-guard"}},
		{name: "policy", template: strings.Replace(vap, "%s", "lock-out", 1),
			want: []string{"ValidatingAdmissionPolicy lock-out", AllowAdmissionPoliciesField + ": true"}},
		{name: "binding", template: binding, want: []string{"ValidatingAdmissionPolicyBinding lock-out", AllowAdmissionPoliciesField}},
		{name: "mutating policy", template: mutate, want: []string{"MutatingAdmissionPolicy rewrite", AllowAdmissionPoliciesField}},
		{name: "policy, opted in", template: strings.Replace(vap, "%s", "lock-out", 1) + "---\n" + binding, allow: true},
		{name: "object in tandem-system", template: strings.Replace(strings.Replace(cm, "%s", "state", 1), "%s", ReservedNamespace, 1),
			want: []string{"ConfigMap state", "namespace tandem-system"}},
		{name: "tandem-system namespace", template: ns, want: []string{"Namespace tandem-system"}},
		{name: "hook", hook: hook, want: []string{"reserved/templates/hook.yaml", "ConfigMap tandem-standby-guard"}},
		// A webhook that can see tandem's lock, state records or Helm's
		// release Secrets can refuse them (a failurePolicy: Fail webhook
		// whose service is gone): tandem could not even take its lock to
		// apply the revert (review revguard2).
		{name: "webhook on leases", template: webhook("ValidatingWebhookConfiguration", "[coordination.k8s.io]", "[leases]"),
			want: []string{"reserved/templates/object.yaml", "ValidatingWebhookConfiguration lock-out", "coordination.k8s.io/leases", AllowAdmissionPoliciesField + ": true"}},
		{name: "webhook on everything", template: webhook("ValidatingWebhookConfiguration", "['*']", "['*/*']"),
			want: []string{"ValidatingWebhookConfiguration lock-out", AllowAdmissionPoliciesField}},
		{name: "mutating webhook on Secrets", template: webhook("MutatingWebhookConfiguration", "['']", "[pods, secrets]"),
			want: []string{"MutatingWebhookConfiguration lock-out", "secrets"}},
		{name: "webhook on core resources", template: webhook("MutatingWebhookConfiguration", "['']", "['*']"),
			want: []string{"MutatingWebhookConfiguration lock-out", AllowAdmissionPoliciesField}},
		{name: "webhook on Secrets, opted in", template: webhook("ValidatingWebhookConfiguration", "['']", "[secrets]"), allow: true},
		// The usual chart webhooks (its own CRDs, Pods, Ingresses) render.
		{name: "webhook on pods", template: webhook("MutatingWebhookConfiguration", "['']", "[pods, pods/exec]")},
		{name: "webhook on its CRDs", template: webhook("ValidatingWebhookConfiguration", "[cert-manager.io]", "['*/*']")},
		{name: "webhook on Ingresses", template: webhook("ValidatingWebhookConfiguration", "[networking.k8s.io]", "[ingresses]")},
		{name: "webhook on ConfigMap subresources only", template: webhook("ValidatingWebhookConfiguration", "['']", "['configmaps/*']")},
		{name: "plain ConfigMap", template: strings.Replace(strings.Replace(cm, "%s", "settings", 1), "%s", "shop", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := testdataRequest(t, "reserved")
			req.Values = []ValuesLayer{{Source: "test", Set: map[string]any{"template": tc.template, "hook": tc.hook}}}
			req.AllowAdmissionPolicies = tc.allow
			_, err := New(DefaultOptions()).Render(context.Background(), req)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("want it rendered, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("rendered; want a refusal")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}
