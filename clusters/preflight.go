package clusters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/jsonmergepatch"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/wait"
)

// fieldManager names tandem in dry-run requests' managedFields.
const fieldManager = "tandem"

// check is what a server-side dry run says about applying one object of a
// planned release manifest.
type check struct {
	obj       object
	uid       types.UID // of the live object; "" when it does not exist yet
	immutable bool      // the update is refused only because immutable fields changed
	err       error     // the dry run's refusal, if any
}

// preflight asks the API server, with dry-run requests, what applying the
// target manifest would do to each object: a create for objects that do not
// exist, and for existing ones the same three-way patch Helm's upgrade sends
// (original: the object in the release's current manifest, or the live
// object when the release does not own it yet). It costs one GET and at
// most one dry-run write per object, which is why only dry runs and Force
// upgrades pay it.
//
// A create refused because the namespace does not exist yet is not an error:
// Install creates the namespace first.
func (c *Cluster) preflight(ctx context.Context, namespace, original, target string) ([]check, error) {
	parsed, err := parseManifest(target)
	if err != nil {
		return nil, fmt.Errorf("planned manifest: %w", err)
	}
	targets, err := resolve(c.getter.mapper, parsed, namespace)
	if err != nil {
		return nil, fmt.Errorf("planned manifest: %w", err)
	}
	originals := map[objectKey]*unstructured.Unstructured{}
	if original != "" {
		prev, err := parseManifest(original)
		if err != nil {
			return nil, fmt.Errorf("current manifest: %w", err)
		}
		for _, u := range prev {
			// Kinds that no longer resolve cannot be in the target either.
			if objs, err := resolve(c.getter.mapper, []*unstructured.Unstructured{u}, namespace); err == nil {
				originals[keyOf(u, objs[0].namespace)] = u
			}
		}
	}
	dryRun := []string{metav1.DryRunAll}
	checks := make([]check, 0, len(targets))
	for _, t := range targets {
		ch := check{obj: t}
		ri := c.dynamic.Resource(t.gvr).Namespace(t.namespace)
		live, err := ri.Get(ctx, t.name(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			u := t.u.DeepCopy()
			u.SetNamespace(t.namespace)
			_, err := ri.Create(ctx, u, metav1.CreateOptions{DryRun: dryRun, FieldManager: fieldManager})
			if err != nil && !namespaceMissing(err, t.namespace) {
				ch.err = err
			}
		case err != nil:
			return nil, fmt.Errorf("%s: %w", t, err)
		default:
			ch.uid = live.GetUID()
			base := live
			if o, ok := originals[keyOf(t.u, t.namespace)]; ok {
				base = o
			}
			patch, pt, err := threeWayPatch(c.scheme, t.u.GroupVersionKind(), base, t.u, live)
			if err != nil {
				ch.err = fmt.Errorf("compute patch: %w", err)
				break
			}
			if len(patch) == 0 || string(patch) == "{}" {
				break
			}
			_, err = ri.Patch(ctx, t.name(), pt, patch, metav1.PatchOptions{DryRun: dryRun, FieldManager: fieldManager})
			ch.err = err
			ch.immutable = isImmutable(err)
		}
		checks = append(checks, ch)
	}
	return checks, nil
}

// checksError turns refused dry runs into one error naming each object.
// With force, immutable-field refusals are not errors: those objects would
// be recreated.
func checksError(checks []check, force bool) error {
	var errs []error
	for _, ch := range checks {
		switch {
		case ch.err == nil, ch.immutable && force:
		case ch.immutable:
			errs = append(errs, fmt.Errorf("%s: %w: %w", ch.obj, ErrImmutable, ch.err))
		default:
			errs = append(errs, fmt.Errorf("%s: %w", ch.obj, ch.err))
		}
	}
	return errors.Join(errs...)
}

// recreate deletes the objects whose update immutable fields refuse and
// waits until they are gone, so the upgrade that follows creates them anew.
// The delete is conditional on the UID preflight saw.
func (c *Cluster) recreate(ctx context.Context, release string, checks []check, timeout time.Duration) error {
	var gone []check
	for _, ch := range checks {
		if !ch.immutable {
			continue
		}
		c.log.Info("recreating object: immutable field changed", "release", release, "object", ch.obj.String())
		ri := c.dynamic.Resource(ch.obj.gvr).Namespace(ch.obj.namespace)
		bg := metav1.DeletePropagationBackground
		err := ri.Delete(ctx, ch.obj.name(), metav1.DeleteOptions{
			PropagationPolicy: &bg,
			Preconditions:     &metav1.Preconditions{UID: &ch.uid},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("%s: delete to recreate: %w", ch.obj, err)
		}
		gone = append(gone, ch)
	}
	for _, ch := range gone {
		ri := c.dynamic.Resource(ch.obj.gvr).Namespace(ch.obj.namespace)
		err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
			live, err := ri.Get(ctx, ch.obj.name(), metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			if err != nil {
				return false, err
			}
			return live.GetUID() != ch.uid, nil
		})
		if err != nil {
			return fmt.Errorf("%s: wait for deletion: %w", ch.obj, err)
		}
	}
	return nil
}

// threeWayPatch computes the patch Helm's upgrade sends for an existing
// object: a strategic merge patch for built-in kinds, a JSON merge patch for
// others (custom resources).
func threeWayPatch(scheme *runtime.Scheme, gvk schema.GroupVersionKind, original, modified, current *unstructured.Unstructured) ([]byte, types.PatchType, error) {
	o, err := json.Marshal(original.Object)
	if err != nil {
		return nil, "", err
	}
	m, err := json.Marshal(modified.Object)
	if err != nil {
		return nil, "", err
	}
	cur, err := json.Marshal(current.Object)
	if err != nil {
		return nil, "", err
	}
	if typed, err := scheme.New(gvk); err == nil {
		meta, err := strategicpatch.NewPatchMetaFromStruct(typed)
		if err != nil {
			return nil, "", err
		}
		p, err := strategicpatch.CreateThreeWayMergePatch(o, m, cur, meta, true)
		return p, types.StrategicMergePatchType, err
	}
	p, err := jsonmergepatch.CreateThreeWayJSONMergePatch(o, m, cur)
	return p, types.MergePatchType, err
}

// isImmutable reports whether an API error refuses an update only because it
// changes fields that cannot change after creation.
func isImmutable(err error) bool {
	var st apierrors.APIStatus
	if err == nil || !errors.As(err, &st) {
		return false
	}
	s := st.Status()
	if s.Reason != metav1.StatusReasonInvalid {
		return false
	}
	if s.Details == nil || len(s.Details.Causes) == 0 {
		return immutableMessage(s.Message)
	}
	for _, cause := range s.Details.Causes {
		if !immutableMessage(cause.Message) {
			return false
		}
	}
	return true
}

// immutableMessage matches the API server's wording for immutable fields:
// "field is immutable" (most kinds) and "updates to statefulset spec for
// fields other than ... are forbidden".
func immutableMessage(m string) bool {
	return strings.Contains(m, "immutable") ||
		(strings.Contains(m, "updates to") && strings.Contains(m, "are forbidden"))
}

// namespaceMissing reports whether err is the API server saying the
// namespace a create targets does not exist.
func namespaceMissing(err error, namespace string) bool {
	var st apierrors.APIStatus
	if namespace == "" || !apierrors.IsNotFound(err) || !errors.As(err, &st) {
		return false
	}
	d := st.Status().Details
	return d != nil && d.Kind == "namespaces" && d.Name == namespace
}
