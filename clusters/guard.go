package clusters

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	admissionv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// The Standby guard is a ValidatingAdmissionPolicy, its binding and its
// parameter (a ConfigMap in SystemNamespace), one set per manifest, all named
// GuardNameFor(manifestID). It refuses, from anyone:
//
//   - a Deployment, StatefulSet or ReplicaSet that carries
//     GuardReplicasAnnotation (the overlay sets it exactly when it holds the
//     workload at zero) with replicas above zero;
//   - a scale subresource request above zero for a workload the parameter
//     lists (a Scale object has no labels or annotations: `kubectl scale`
//     and HPAs are keyed by namespace, resource and name);
//   - a CronJob or KEDA ScaledObject that carries GuardHeldAnnotation and is
//     not suspended, or not paused at zero replicas.
//
// The markers are on the objects tandem itself writes, so its own writes —
// a switchover warming the Standby, a rollback, a release turned
// `standby: keep` — drop the marker in the same write and pass: the policy
// needs no exemption by identity, and a person's write that keeps the marker
// (kubectl scale, edit, patch, a client-side apply) is refused.
const (
	GuardName = "tandem-standby-guard"
	// GuardReplicasAnnotation marks a workload held at zero (render's
	// AnnotationActiveCount: the replicas it runs with when Active).
	GuardReplicasAnnotation = "tandem.dev/active-replicas"
	// GuardHeldAnnotation marks a CronJob tandem suspended or a ScaledObject
	// it paused because the cluster is a Standby.
	GuardHeldAnnotation = "tandem.dev/held"
	// GuardKEDAPaused is KEDA's paused-replicas annotation.
	GuardKEDAPaused = "autoscaling.keda.sh/paused-replicas"
	// guardVersionAnnotation records GuardPolicyVersion on the policy.
	guardVersionAnnotation = "tandem.dev/guard-version"
	// guardClusterKey is the parameter's key naming the manifest cluster.
	guardClusterKey = "cluster"
)

// GuardNameFor names the guard's objects for a manifest ID, as
// StateConfigMapFor names its state record.
func GuardNameFor(manifestID string) string {
	if manifestID == "" || manifestID == "default" {
		return GuardName
	}
	return GuardName + "-" + manifestID
}

// Guard is what one manifest's Standby guard holds on a cluster.
type Guard struct {
	// Warn lets refused writes through with a warning (the binding's Warn
	// action) instead of refusing them.
	Warn bool
	// Cluster is the manifest cluster's name, for the message.
	Cluster string
	// Scaled are the workloads whose scale subresource may not go above
	// zero: GuardKey → the release that renders it ("namespace/name").
	Scaled map[string]string
	// PolicyVersion is the policy's GuardPolicyVersion() as read ("" when
	// the policy is missing); ApplyGuard always writes the current one.
	PolicyVersion string
}

// Equal reports whether two guards hold the same thing.
func (g *Guard) Equal(o *Guard) bool {
	if g == nil || o == nil {
		return g == o
	}
	return g.Warn == o.Warn && g.Cluster == o.Cluster && g.PolicyVersion == o.PolicyVersion && maps.Equal(g.Scaled, o.Scaled)
}

// GuardKey is the parameter key of a workload: "namespace.resource.name"
// (resource is "deployments", "statefulsets" or "replicasets"). A namespace
// has no dots, so the key is unambiguous. ok is false when the key would
// pass a ConfigMap key's 253 characters (a name of about 170 or more).
func GuardKey(namespace, resource, name string) (key string, ok bool) {
	key = namespace + "." + resource + "." + name
	return key, len(key) <= 253
}

// GuardPolicyVersion identifies the policy's rules (a hash of its spec),
// so a tandem whose rules differ rewrites the policy an older one wrote.
func GuardPolicyVersion() string {
	b, err := json.Marshal(guardPolicy(GuardName).Spec)
	if err != nil {
		return "unknown" // cannot happen: the spec is plain data
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// guardMessage is the refusal, as a CEL string expression. It names the
// object, the cluster and what to do instead.
const guardMessage = `(has(request.subResource) && request.subResource == 'scale' ? request.resource.resource : request.kind.kind) + ' ' + request.namespace + '/' + request.name +
  ' is held at zero by tandem on Standby cluster ' + (has(params.data) && 'cluster' in params.data ? params.data['cluster'] : '(unknown)') +
  ': scaling it up, resuming or unpausing it here is refused. To run it here, switch over: tandem switchover --to ' +
  (has(params.data) && 'cluster' in params.data ? params.data['cluster'] : '<cluster>') + ', then commit and push tandem.yaml.'`

// guardPolicy is the policy's desired state.
// version, when set, is recorded in the policy's annotation.
func guardPolicy(name string, version ...string) *admissionv1ac.ValidatingAdmissionPolicyApplyConfiguration {
	rule := func(group string, ops []admissionv1.OperationType, resources ...string) *admissionv1ac.NamedRuleWithOperationsApplyConfiguration {
		return admissionv1ac.NamedRuleWithOperations().
			WithAPIGroups(group).WithAPIVersions("*").WithResources(resources...).WithOperations(ops...)
	}
	createUpdate := []admissionv1.OperationType{admissionv1.Create, admissionv1.Update}
	const (
		annotations = "has(object.metadata.annotations)"
		// An empty subResource is absent from the request, not "": test it with has().
		scale = "(has(request.subResource) && request.subResource == 'scale')"
	)
	validate := func(expr string) *admissionv1ac.ValidationApplyConfiguration {
		return admissionv1ac.Validation().WithExpression(expr).WithMessageExpression(guardMessage).WithReason(metav1.StatusReasonForbidden)
	}
	p := admissionv1ac.ValidatingAdmissionPolicy(name).
		WithLabels(map[string]string{"app.kubernetes.io/managed-by": "tandem"}).
		WithSpec(admissionv1ac.ValidatingAdmissionPolicySpec().
			// Fail open: a policy that cannot be evaluated (the API server
			// starting, its parameter informer not yet synced) must not
			// refuse every scale request of the cluster's other workloads.
			WithFailurePolicy(admissionv1.Ignore).
			WithParamKind(admissionv1ac.ParamKind().WithAPIVersion("v1").WithKind("ConfigMap")).
			WithMatchConstraints(admissionv1ac.MatchResources().WithResourceRules(
				rule("apps", createUpdate, "deployments", "statefulsets", "replicasets",
					"deployments/scale", "statefulsets/scale", "replicasets/scale"),
				rule("batch", createUpdate, "cronjobs"),
				rule("keda.sh", createUpdate, "scaledobjects"),
			)).
			// Only scale requests and objects carrying a marker are
			// evaluated: every other write in the cluster is untouched.
			WithMatchConditions(
				admissionv1ac.MatchCondition().WithName("held-or-scale").WithExpression(
					scale+" || ("+annotations+" && ('"+GuardReplicasAnnotation+"' in object.metadata.annotations || '"+GuardHeldAnnotation+"' in object.metadata.annotations))"),
				// A Deployment's ReplicaSets inherit its annotations, and the
				// Deployment controller never removes one it copied: the
				// marker on them says nothing. Objects a controller owns are
				// that controller's business.
				admissionv1ac.MatchCondition().WithName("not-controller-owned").WithExpression(
					scale+" || !has(object.metadata.ownerReferences) || !object.metadata.ownerReferences.exists(r, has(r.controller) && r.controller)"),
			).
			WithValidations(
				validate(scale+" || request.resource.group != 'apps' || !("+annotations+" && '"+GuardReplicasAnnotation+"' in object.metadata.annotations) || !has(object.spec.replicas) || object.spec.replicas == 0"),
				validate("!"+scale+" || !has(object.spec.replicas) || object.spec.replicas == 0 || !has(params.data) || !((request.namespace + '.' + request.resource.resource + '.' + request.name) in params.data)"),
				validate("request.resource.resource != 'cronjobs' || !("+annotations+" && '"+GuardHeldAnnotation+"' in object.metadata.annotations) || (has(object.spec.suspend) && object.spec.suspend)"),
				validate("request.resource.resource != 'scaledobjects' || !("+annotations+" && '"+GuardHeldAnnotation+"' in object.metadata.annotations) || ('"+GuardKEDAPaused+"' in object.metadata.annotations && object.metadata.annotations['"+GuardKEDAPaused+"'] == '0')"),
			))
	if len(version) > 0 {
		p.WithAnnotations(map[string]string{guardVersionAnnotation: version[0]})
	}
	return p
}

// ReadGuard reads the manifest's guard, or (nil, nil) when its binding does
// not exist (no guard in force).
func (c *Cluster) ReadGuard(ctx context.Context, manifestID string) (*Guard, error) {
	name := GuardNameFor(manifestID)
	adm := c.clientset.AdmissionregistrationV1()
	b, err := adm.ValidatingAdmissionPolicyBindings().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster %q: read standby guard: binding %s: %w", c.name, name, err)
	}
	g := &Guard{Scaled: map[string]string{}}
	for _, a := range b.Spec.ValidationActions {
		g.Warn = g.Warn || a == admissionv1.Warn
	}
	p, err := adm.ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("cluster %q: read standby guard: policy %s: %w", c.name, name, err)
	default:
		g.PolicyVersion = p.Annotations[guardVersionAnnotation]
	}
	cm, err := c.clientset.CoreV1().ConfigMaps(SystemNamespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("cluster %q: read standby guard: configmap %s/%s: %w", c.name, SystemNamespace, name, err)
	default:
		for k, v := range cm.Data {
			if k == guardClusterKey {
				g.Cluster = v
				continue
			}
			g.Scaled[k] = v
		}
	}
	return g, nil
}

// ApplyGuard writes the manifest's guard: the parameter first, then the
// policy, then the binding that puts it in force, each with one server-side
// apply (field manager "tandem"). The API server takes about a second to
// start enforcing a new or changed policy.
func (c *Cluster) ApplyGuard(ctx context.Context, manifestID string, g Guard) error {
	name := GuardNameFor(manifestID)
	data := map[string]string{guardClusterKey: g.Cluster}
	for k, v := range g.Scaled {
		if k == guardClusterKey || strings.Count(k, ".") < 2 {
			return fmt.Errorf("cluster %q: standby guard: bad workload key %q", c.name, k)
		}
		data[k] = v
	}
	labels := map[string]string{"app.kubernetes.io/managed-by": "tandem"}
	cm := corev1ac.ConfigMap(name, SystemNamespace).WithLabels(labels).WithData(data)
	opts := metav1.ApplyOptions{FieldManager: fieldManager, Force: true}
	err := c.inSystemNamespace(ctx, func() error {
		_, err := c.clientset.CoreV1().ConfigMaps(SystemNamespace).Apply(ctx, cm, opts)
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster %q: standby guard: configmap %s/%s: %w", c.name, SystemNamespace, name, err)
	}
	adm := c.clientset.AdmissionregistrationV1()
	if _, err := adm.ValidatingAdmissionPolicies().Apply(ctx, guardPolicy(name, GuardPolicyVersion()), opts); err != nil {
		return fmt.Errorf("cluster %q: standby guard: policy %s: %w", c.name, name, err)
	}
	action := admissionv1.Deny
	if g.Warn {
		action = admissionv1.Warn
	}
	binding := admissionv1ac.ValidatingAdmissionPolicyBinding(name).WithLabels(labels).
		WithSpec(admissionv1ac.ValidatingAdmissionPolicyBindingSpec().
			WithPolicyName(name).
			WithValidationActions(action).
			WithParamRef(admissionv1ac.ParamRef().WithName(name).WithNamespace(SystemNamespace).
				WithParameterNotFoundAction(admissionv1.AllowAction)))
	if _, err := adm.ValidatingAdmissionPolicyBindings().Apply(ctx, binding, opts); err != nil {
		return fmt.Errorf("cluster %q: standby guard: binding %s: %w", c.name, name, err)
	}
	return nil
}

// RemoveGuard deletes the manifest's guard, binding first (which ends
// enforcement), and reports whether anything was there.
func (c *Cluster) RemoveGuard(ctx context.Context, manifestID string) (bool, error) {
	name := GuardNameFor(manifestID)
	adm := c.clientset.AdmissionregistrationV1()
	removed := false
	del := func(what string, f func() error) error {
		err := f()
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("cluster %q: remove standby guard: %s: %w", c.name, what, err)
		}
		removed = true
		return nil
	}
	if err := del("binding "+name, func() error {
		return adm.ValidatingAdmissionPolicyBindings().Delete(ctx, name, metav1.DeleteOptions{})
	}); err != nil {
		return removed, err
	}
	if err := del("policy "+name, func() error {
		return adm.ValidatingAdmissionPolicies().Delete(ctx, name, metav1.DeleteOptions{})
	}); err != nil {
		return removed, err
	}
	err := del("configmap "+SystemNamespace+"/"+name, func() error {
		return c.clientset.CoreV1().ConfigMaps(SystemNamespace).Delete(ctx, name, metav1.DeleteOptions{})
	})
	return removed, err
}
