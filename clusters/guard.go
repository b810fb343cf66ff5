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
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	admissionv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
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
// and, from anyone but the user tandem writes the guard with (the
// parameter's writer, as the API server authenticates it):
//
//   - an update that drops either marker from an object that carries it
//     (`kubectl annotate …-`, or `helm rollback`/`upgrade` to a revision
//     rendered while the cluster was Active: one 3-way patch that drops the
//     marker and raises replicas);
//   - a Deployment, StatefulSet or ReplicaSet the parameter lists, written
//     through the object itself with replicas above zero (whatever its
//     annotations say: a marker dropped earlier, or the object re-created).
//
// tandem's own writes that raise a held object — a switchover warming the
// Standby (tandem removes the target's guard first), a rollback, a release
// turned `standby: keep` — drop the marker in the same write, as the user
// the parameter names. A person's write, or a chart's, under another
// identity is refused; a person using tandem's own credentials is tandem to
// the API server.
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
	// guardWrittenAnnotation records, on the policy and the binding, a hash
	// of their spec as the API server returned it from tandem's write: a
	// live spec that hashes otherwise was edited since (ReadGuard).
	guardWrittenAnnotation = "tandem.dev/guard-written"
	// guardClusterKey is the parameter's key naming the manifest cluster.
	guardClusterKey = "cluster"
	// guardWriterKey is the parameter's key naming the user tandem writes
	// as: the one whose writes may drop a marker.
	guardWriterKey = "writer"
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
	// Writer is the user tandem writes to the cluster as (Username): only
	// its writes may drop a marker or raise a listed workload.
	Writer string
	// Edited says the live policy or binding is not what tandem last wrote
	// there (someone changed its spec: failurePolicy, match rules, actions);
	// ApplyGuard writes the whole object again.
	Edited bool
}

// Equal reports whether two guards hold the same thing.
func (g *Guard) Equal(o *Guard) bool {
	if g == nil || o == nil {
		return g == o
	}
	return g.Warn == o.Warn && g.Cluster == o.Cluster && g.PolicyVersion == o.PolicyVersion && g.Writer == o.Writer &&
		g.Edited == o.Edited && maps.Equal(g.Scaled, o.Scaled)
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
// object, the cluster and what to do instead; writerRule adds, for the
// rules only tandem's own user passes, whom the guard lets through and who
// asked (a tandem running as another user than the guard names sees it at
// once), and every refusal ends with how to break glass: name is the
// binding.
func guardMessage(name string, writerRule bool) string {
	const (
		cluster = `(params != null && has(params.data) && 'cluster' in params.data ? params.data['cluster'] : '(unknown)')`
		writer  = `(params != null && has(params.data) && '` + guardWriterKey + `' in params.data ? params.data['` + guardWriterKey + `'] : 'none recorded')`
	)
	msg := `(has(request.subResource) && request.subResource == 'scale' ? request.resource.resource : request.kind.kind) + ' ' + request.namespace + '/' + request.name +
  ' is held at zero by tandem on Standby cluster ' + ` + cluster + ` +
  ': scaling it up, resuming or unpausing it, or dropping tandem\'s marker from it (helm rollback to a revision from when the cluster was Active does), is refused here. To run it here, switch over: tandem switchover --to ' +
  ` + cluster + ` + ', then commit and push tandem.yaml.'`
	if writerRule {
		msg += ` + ' Only the user tandem writes as (' + ` + writer + ` + ') may drop its marker or raise a workload it holds; this request came from ' + request.userInfo.username +
  ': if that is tandem, run it again (a run names its own user in the guard before it writes).'`
	}
	return msg + ` + ' Break glass: kubectl delete validatingadmissionpolicybinding ` + name + `, and run tandem with --standby-guard off until it is over.'`
}

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
		apps  = "request.resource.group == 'apps'"
		// listed: the parameter holds the workload at zero.
		listed = "(params != null && has(params.data) && (request.namespace + '.' + request.resource.resource + '.' + request.name) in params.data)"
		// writer: the request is tandem's own (the user it wrote the guard as).
		writer = "(params != null && has(params.data) && '" + guardWriterKey + "' in params.data && request.userInfo.username == params.data['" + guardWriterKey + "'])"
	)
	marked := func(obj, key string) string {
		return "(has(" + obj + ".metadata.annotations) && '" + key + "' in " + obj + ".metadata.annotations)"
	}
	// kept: an update keeps the marker the old object carried (oldObject is
	// null on a create).
	kept := func(key string) string {
		return "(oldObject == null || !" + marked("oldObject", key) + " || " + marked("object", key) + ")"
	}
	validate := func(expr string) *admissionv1ac.ValidationApplyConfiguration {
		return admissionv1ac.Validation().WithExpression(expr).WithMessageExpression(guardMessage(name, false)).WithReason(metav1.StatusReasonForbidden)
	}
	// validateWriter is a rule only tandem's own user passes.
	validateWriter := func(expr string) *admissionv1ac.ValidationApplyConfiguration {
		return admissionv1ac.Validation().WithExpression(expr).WithMessageExpression(guardMessage(name, true)).WithReason(metav1.StatusReasonForbidden)
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
			// Only scale requests, objects that carry or carried a marker
			// and the workloads the parameter lists are evaluated: every
			// other write in the cluster is untouched.
			WithMatchConditions(
				admissionv1ac.MatchCondition().WithName("held-or-scale").WithExpression(
					scale+" || "+marked("object", GuardReplicasAnnotation)+" || "+marked("object", GuardHeldAnnotation)+
						" || (oldObject != null && ("+marked("oldObject", GuardReplicasAnnotation)+" || "+marked("oldObject", GuardHeldAnnotation)+"))"+
						" || ("+apps+" && "+listed+")"),
				// A Deployment's ReplicaSets inherit its annotations, and the
				// Deployment controller never removes one it copied: the
				// marker on them says nothing. Objects a controller owns are
				// that controller's business.
				admissionv1ac.MatchCondition().WithName("not-controller-owned").WithExpression(
					scale+" || !has(object.metadata.ownerReferences) || !object.metadata.ownerReferences.exists(r, has(r.controller) && r.controller)"),
			).
			WithValidations(
				validate(scale+" || request.resource.group != 'apps' || !("+annotations+" && '"+GuardReplicasAnnotation+"' in object.metadata.annotations) || !has(object.spec.replicas) || object.spec.replicas == 0"),
				validate("!"+scale+" || !has(object.spec.replicas) || object.spec.replicas == 0 || !"+listed),
				validate("request.resource.resource != 'cronjobs' || !("+annotations+" && '"+GuardHeldAnnotation+"' in object.metadata.annotations) || (has(object.spec.suspend) && object.spec.suspend)"),
				validate("request.resource.resource != 'scaledobjects' || !("+annotations+" && '"+GuardHeldAnnotation+"' in object.metadata.annotations) || ('"+GuardKEDAPaused+"' in object.metadata.annotations && object.metadata.annotations['"+GuardKEDAPaused+"'] == '0')"),
				// Only tandem drops a marker.
				validateWriter(scale+" || "+writer+" || ("+kept(GuardReplicasAnnotation)+" && "+kept(GuardHeldAnnotation)+")"),
				// Only tandem raises a workload the parameter lists, marker or not.
				validateWriter(scale+" || !("+apps+") || "+writer+" || !"+listed+" || !has(object.spec.replicas) || object.spec.replicas == 0"),
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
	g.Edited = b.Annotations[guardWrittenAnnotation] != specHash(b.Spec)
	p, err := adm.ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("cluster %q: read standby guard: policy %s: %w", c.name, name, err)
	default:
		g.PolicyVersion = p.Annotations[guardVersionAnnotation]
		g.Edited = g.Edited || p.Annotations[guardWrittenAnnotation] != specHash(p.Spec)
	}
	cm, err := c.clientset.CoreV1().ConfigMaps(SystemNamespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("cluster %q: read standby guard: configmap %s/%s: %w", c.name, SystemNamespace, name, err)
	default:
		for k, v := range cm.Data {
			switch k {
			case guardClusterKey:
				g.Cluster = v
			case guardWriterKey:
				g.Writer = v
			default:
				g.Scaled[k] = v
			}
		}
	}
	return g, nil
}

// specHash identifies a policy's or binding's spec as the API server
// holds it (with its defaults).
func specHash(spec any) string {
	b, err := json.Marshal(spec)
	if err != nil {
		return "" // cannot happen: the spec is plain data
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// ApplyGuard writes the manifest's guard: the parameter first, then the
// policy, then the binding that puts it in force. Each is written whole
// (created, or updated over what is live), so what someone added or
// changed by hand is gone after it; the policy and the binding then record
// the hash of their spec as written (ReadGuard compares it). The API
// server takes about a second to start enforcing a new or changed policy.
func (c *Cluster) ApplyGuard(ctx context.Context, manifestID string, g Guard) error {
	name := GuardNameFor(manifestID)
	data := map[string]string{guardClusterKey: g.Cluster}
	if g.Writer != "" {
		data[guardWriterKey] = g.Writer
	}
	for k, v := range g.Scaled {
		if k == guardClusterKey || k == guardWriterKey || strings.Count(k, ".") < 2 {
			return fmt.Errorf("cluster %q: standby guard: bad workload key %q", c.name, k)
		}
		data[k] = v
	}
	labels := map[string]string{"app.kubernetes.io/managed-by": "tandem"}
	cms := c.clientset.CoreV1().ConfigMaps(SystemNamespace)
	err := c.inSystemNamespace(ctx, func() error {
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: SystemNamespace, Labels: labels}, Data: data},
				metav1.CreateOptions{FieldManager: fieldManager})
			return err
		}
		if err != nil {
			return err
		}
		cm.Labels, cm.Data, cm.BinaryData = mergeLabels(cm.Labels, labels), data, nil
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster %q: standby guard: configmap %s/%s: %w", c.name, SystemNamespace, name, err)
	}
	if err := c.writePolicy(ctx, name); err != nil {
		return fmt.Errorf("cluster %q: standby guard: policy %s: %w", c.name, name, err)
	}
	if err := c.writeBinding(ctx, name, g.Warn, labels); err != nil {
		return fmt.Errorf("cluster %q: standby guard: binding %s: %w", c.name, name, err)
	}
	return nil
}

// writePolicy creates or replaces the guard's policy, then records the
// hash of its spec as the API server returned it.
func (c *Cluster) writePolicy(ctx context.Context, name string) error {
	var want admissionv1.ValidatingAdmissionPolicy
	if err := fromApplyConfiguration(guardPolicy(name, GuardPolicyVersion()), &want); err != nil {
		return err
	}
	api := c.clientset.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	live, err := api.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		live, err = api.Create(ctx, &want, metav1.CreateOptions{FieldManager: fieldManager})
	case err == nil:
		live.Labels = mergeLabels(live.Labels, want.Labels)
		live.Annotations = mergeLabels(live.Annotations, want.Annotations)
		live.Spec = want.Spec
		live, err = api.Update(ctx, live, metav1.UpdateOptions{FieldManager: fieldManager})
	}
	if err != nil {
		return err
	}
	_, err = api.Patch(ctx, name, types.MergePatchType, writtenPatch(live.Spec), metav1.PatchOptions{FieldManager: fieldManager})
	return err
}

// writeBinding creates or replaces the guard's binding, then records the
// hash of its spec as the API server returned it.
func (c *Cluster) writeBinding(ctx context.Context, name string, warn bool, labels map[string]string) error {
	action := admissionv1.Deny
	if warn {
		action = admissionv1.Warn
	}
	ac := admissionv1ac.ValidatingAdmissionPolicyBinding(name).WithLabels(labels).
		WithSpec(admissionv1ac.ValidatingAdmissionPolicyBindingSpec().
			WithPolicyName(name).
			WithValidationActions(action).
			WithParamRef(admissionv1ac.ParamRef().WithName(name).WithNamespace(SystemNamespace).
				WithParameterNotFoundAction(admissionv1.AllowAction)))
	var want admissionv1.ValidatingAdmissionPolicyBinding
	if err := fromApplyConfiguration(ac, &want); err != nil {
		return err
	}
	api := c.clientset.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	live, err := api.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		live, err = api.Create(ctx, &want, metav1.CreateOptions{FieldManager: fieldManager})
	case err == nil:
		live.Labels = mergeLabels(live.Labels, want.Labels)
		live.Spec = want.Spec
		live, err = api.Update(ctx, live, metav1.UpdateOptions{FieldManager: fieldManager})
	}
	if err != nil {
		return err
	}
	_, err = api.Patch(ctx, name, types.MergePatchType, writtenPatch(live.Spec), metav1.PatchOptions{FieldManager: fieldManager})
	return err
}

// fromApplyConfiguration turns an apply configuration into the typed
// object it describes (they share their JSON form).
func fromApplyConfiguration(ac, into any) error {
	b, err := json.Marshal(ac)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

func writtenPatch(spec any) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{guardWrittenAnnotation: specHash(spec)}}})
	return b
}

func mergeLabels(have, want map[string]string) map[string]string {
	out := maps.Clone(have)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, want)
	return out
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
