package clusters

import (
	"sync"

	"helm.sh/helm/v3/pkg/kube"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/resource"
)

// writtenClient is Helm's kube client, keeping the objects as the API
// server answered Helm's writes of them: for a create or a patch the
// server's response, for an object Helm found unchanged the object as Helm
// read it back. A release's drift-check record is made from them (see
// Release.Written), so the first reconcile after an install or upgrade needs
// no dry run to know the objects are as applied. Only successful calls are
// kept.
type writtenClient struct {
	*kube.Client

	mu      sync.Mutex
	written map[objectKey]*unstructured.Unstructured // guarded by mu
}

// IsReachable implements kube.Interface without a request: the cluster was
// reached when it was connected (GET /version), and every request of the
// action reports its own failure. Helm would ask for /version again before
// every install, upgrade and rollback.
func (w *writtenClient) IsReachable() error { return nil }

// Create implements kube.Interface.
func (w *writtenClient) Create(resources kube.ResourceList) (*kube.Result, error) {
	res, err := w.Client.Create(resources)
	if err == nil {
		w.keep(resources)
	}
	return res, err
}

// Update implements kube.Interface.
func (w *writtenClient) Update(original, target kube.ResourceList, force bool) (*kube.Result, error) {
	res, err := w.Client.Update(original, target, force)
	if err == nil {
		w.keep(target)
	}
	return res, err
}

// UpdateThreeWayMerge implements kube.InterfaceThreeWayMerge.
func (w *writtenClient) UpdateThreeWayMerge(original, target kube.ResourceList, force bool) (*kube.Result, error) {
	res, err := w.Client.UpdateThreeWayMerge(original, target, force)
	if err == nil {
		w.keep(target)
	}
	return res, err
}

func (w *writtenClient) keep(infos []*resource.Info) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.written == nil {
		w.written = map[objectKey]*unstructured.Unstructured{}
	}
	for _, info := range infos {
		var u *unstructured.Unstructured
		switch o := info.Object.(type) {
		case *unstructured.Unstructured:
			u = o.DeepCopy()
		default:
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
			if err != nil {
				continue // not kept: a dry run decides
			}
			u = &unstructured.Unstructured{Object: m}
		}
		ns := ""
		if info.Namespaced() {
			ns = info.Namespace
		}
		gvk := info.Mapping.GroupVersionKind
		w.written[objectKey{gvk.Group, gvk.Kind, ns, info.Name}] = u
	}
}

// objects returns what was kept, nil if nothing.
func (w *writtenClient) objects() []*unstructured.Unstructured {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.written) == 0 {
		return nil
	}
	out := make([]*unstructured.Unstructured, 0, len(w.written))
	for _, u := range w.written {
		out = append(out, u)
	}
	return out
}

var (
	_ kube.Interface              = (*writtenClient)(nil)
	_ kube.InterfaceThreeWayMerge = (*writtenClient)(nil)
	_ kube.InterfaceExt           = (*writtenClient)(nil)
)
