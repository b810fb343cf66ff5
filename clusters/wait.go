package clusters

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ObjectStatus is the health of one object, as kstatus computes it.
type ObjectStatus struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Status is kstatus' verdict: Current, InProgress, Failed, Terminating,
	// NotFound or Unknown.
	Status string `json:"status"`
	// Message says why, e.g. "Available: 0/3".
	Message string `json:"message,omitempty"`
	// Object is, when WaitHealthy returns healthy, the object as last read
	// or watched, the one Status was computed from; nil for kinds without
	// status (read as metadata only), and in progress reports and errors.
	Object *unstructured.Unstructured `json:"-"`
}

// String reads "Deployment shop/web: InProgress: Available: 0/3".
func (s ObjectStatus) String() string {
	out := objectName(s.Kind, s.Namespace, s.Name) + ": " + s.Status
	if s.Message != "" {
		out += ": " + s.Message
	}
	return out
}

// Current reports whether the object is ready (kstatus Current).
func (s ObjectStatus) Current() bool { return s.Status == string(status.CurrentStatus) }

// WaitOptions configures WaitHealthy.
type WaitOptions struct {
	// Namespace is given to namespaced objects the manifest leaves without
	// one, as Helm does: set it to the release namespace. Helm's stored
	// manifests usually leave it out, so it is an error for it to be empty
	// when needed (guessing "default" would only time out).
	Namespace string
	// Timeout bounds the wait; 0 leaves it to ctx.
	Timeout time.Duration
	// Interval is the time between polls; it is capped at 10 s so Progress
	// can keep its promise.
	Interval time.Duration
	// Progress, when set, receives every object's status after a poll that
	// changed something, and at least every 10 s while waiting (polls that
	// fail to read the objects report nothing).
	Progress func([]ObjectStatus)
	// Written are objects as the API server answered their write
	// (Release.Written): those of the manifest start from that answer and
	// are watched from its resourceVersion, rather than read again first.
	Written []*unstructured.Unstructured
}

// DefaultWaitOptions polls every 2 s for up to 5 minutes.
func DefaultWaitOptions() WaitOptions {
	return WaitOptions{Timeout: 5 * time.Minute, Interval: 2 * time.Second}
}

const maxProgressGap = 10 * time.Second

// HealthError is WaitHealthy's error when objects did not all become
// Current: one failed (kstatus Failed), or the wait ended first.
type HealthError struct {
	Cluster string
	// Objects are, in manifest order, the Failed objects when one failed,
	// else every object that was not Current when the wait ended.
	Objects []ObjectStatus
	// Waited is how long WaitHealthy waited.
	Waited time.Duration
	// Err is the context's error when the wait timed out or was cancelled,
	// nil when an object failed.
	Err error
	// ReadErr is the last poll's error when reading the objects failed (the
	// API server was unreachable, say): Objects then hold what was read
	// before, or Unknown.
	ReadErr error
}

func (e *HealthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster %q: ", e.Cluster)
	if e.Err != nil {
		fmt.Fprintf(&b, "not healthy after %s (%v): ", e.Waited.Round(time.Second), e.Err)
	} else {
		b.WriteString("object failed: ")
	}
	for i, s := range e.Objects {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s.String())
	}
	if e.ReadErr != nil {
		fmt.Fprintf(&b, "; last read failed: %v", e.ReadErr)
	}
	return b.String()
}

func (e *HealthError) Unwrap() error { return e.Err }

// WaitHealthy waits until kstatus computes every object of a release
// manifest (multi-document YAML, as in Release.Manifest) Current, and
// returns their last statuses. It returns a *HealthError naming the objects
// that are not ready, and why, as soon as one is Failed, or when the
// timeout or ctx ends the wait. A Deployment scaled to zero is Current;
// kinds without status (ConfigMap, Secret, ...) are Current once they exist.
//
// The objects are read once — one List per kind and namespace when there
// are several of them, a GET otherwise; kinds without status as metadata
// only, and only until they are found; objects in Written are not read but
// taken from there — and those not Current are then watched, each from the
// resourceVersion it was read at, so a change is seen as it happens rather
// than at the next poll. The status is always computed from an object the
// API server returned at or after that read. Objects that cannot be watched
// (not found yet, or their watch ended) are read again every Interval, and
// everything at least every 10 s; before the wait ends healthy, objects not
// watched are read again unless they were read within Interval.
func (c *Cluster) WaitHealthy(ctx context.Context, manifest string, opts WaitOptions) ([]ObjectStatus, error) {
	parsed, err := parseManifest(manifest)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: wait: %w", c.name, err)
	}
	objs, err := resolve(c.getter.mapper, parsed, opts.Namespace)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: wait: %w", c.name, err)
	}
	for _, o := range objs {
		if o.namespaced && o.namespace == "" {
			return nil, fmt.Errorf("cluster %q: wait: %s %s has no namespace and WaitOptions.Namespace is empty (set it to the release namespace)", c.name, o.kind(), o.name())
		}
	}
	if len(objs) == 0 {
		return []ObjectStatus{}, nil
	}
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	interval := opts.Interval
	if interval <= 0 {
		interval = DefaultWaitOptions().Interval
	}
	interval = min(interval, maxProgressGap)

	start := time.Now()
	p := newPoller(objs)
	p.seed(opts.Written)
	w := newWatches(c, len(objs))
	defer w.stop()
	var reported []ObjectStatus // the last statuses computed from a complete read
	var reportedAt time.Time    // when Progress was last called
	// Reads keep going through errors (an apiserver restarting) until the
	// deadline, which reports the last one.
	logErr := func(err error) {
		if err != nil && ctx.Err() == nil {
			c.log.Warn("wait: read failed; retrying", "error", err)
		}
	}
	err = c.poll(ctx, p, func(i int) bool { return !p.read[i] })
	lastRead := time.Now()
	logErr(err)
	for {
		if p.complete() {
			statuses := p.statuses()
			if opts.Progress != nil && (!slices.Equal(statuses, reported) || time.Since(reportedAt) >= maxProgressGap) {
				opts.Progress(slices.Clone(statuses))
				reportedAt = time.Now()
			}
			reported = statuses
			notReady, failed := notCurrent(statuses)
			if len(notReady) == 0 {
				// Objects that are not watched (they were Current) are
				// taken as they were read only if that was within an
				// interval; otherwise they are read again first.
				stale := func(i int) bool { return w.open[i] == nil && time.Since(p.readAt[i]) > interval }
				if !p.any(stale) {
					return p.withObjects(statuses), nil
				}
				err = c.poll(ctx, p, stale)
				logErr(err)
				if err == nil {
					continue
				}
			}
			if len(failed) > 0 {
				return statuses, &HealthError{Cluster: c.name, Objects: failed, Waited: time.Since(start)}
			}
		}
		// The next full read is due a gap after the last one, however many
		// events came in between: events of one watched object must not
		// starve the read of objects that are not watched.
		gap := maxProgressGap
		if !w.cover(ctx, p) {
			gap = interval
		}
		timer := time.NewTimer(max(0, time.Until(lastRead.Add(gap))))
		select {
		case <-ctx.Done():
			timer.Stop()
			he := &HealthError{Cluster: c.name, Waited: time.Since(start), Err: ctx.Err()}
			if err != nil && !errors.Is(err, ctx.Err()) {
				he.ReadErr = err
			}
			last := reported
			if last == nil {
				last = p.unknown()
			}
			he.Objects, _ = notCurrent(last)
			return last, he
		case ev := <-w.events:
			timer.Stop()
			w.apply(p, ev)
		case <-timer.C:
			err = c.poll(ctx, p, func(int) bool { return true })
			lastRead = time.Now()
			logErr(err)
		}
	}
}

// notCurrent splits out the statuses that are not Current, and of those
// the Failed ones.
func notCurrent(statuses []ObjectStatus) (notReady, failed []ObjectStatus) {
	for _, s := range statuses {
		if s.Current() {
			continue
		}
		notReady = append(notReady, s)
		if s.Status == string(status.FailedStatus) {
			failed = append(failed, s)
		}
	}
	return notReady, failed
}

// statusless reports kinds that have no status to wait for: they are ready
// once they exist, so they are read as metadata only.
func statusless(gr schema.GroupResource) bool {
	switch gr.Group {
	case "":
		switch gr.Resource {
		case "configmaps", "secrets", "serviceaccounts", "limitranges":
			return true
		}
	case "rbac.authorization.k8s.io":
		return true // roles, rolebindings, clusterroles, clusterrolebindings
	case "scheduling.k8s.io":
		return gr.Resource == "priorityclasses"
	case "storage.k8s.io":
		return gr.Resource == "storageclasses"
	case "admissionregistration.k8s.io":
		return gr.Resource == "validatingwebhookconfigurations" || gr.Resource == "mutatingwebhookconfigurations"
	}
	return false
}

// poller holds what WaitHealthy knows between reads. It is used by one
// goroutine.
type poller struct {
	objs    []object
	groups  []pollGroup
	settled []bool // statusless objects already found: not read again
	// live and found are each object's state as last read or watched
	// (live is nil for statusless kinds, read as metadata); version is the
	// resourceVersion it was read at, the point a watch starts from ("" if
	// unknown); read says the object was read at least once.
	live    []*unstructured.Unstructured
	found   []bool
	version []string
	read    []bool
	readAt  []time.Time
}

// pollGroup is the objects of one resource in one namespace.
type pollGroup struct {
	gvr       schema.GroupVersionResource
	namespace string
	idx       []int // into poller.objs
}

func newPoller(objs []object) *poller {
	n := len(objs)
	p := &poller{objs: objs, settled: make([]bool, n), live: make([]*unstructured.Unstructured, n), found: make([]bool, n),
		version: make([]string, n), read: make([]bool, n), readAt: make([]time.Time, n)}
	at := map[[2]string]int{}
	for i, o := range objs {
		k := [2]string{o.gvr.String(), o.namespace}
		g, ok := at[k]
		if !ok {
			g = len(p.groups)
			at[k] = g
			p.groups = append(p.groups, pollGroup{gvr: o.gvr, namespace: o.namespace})
		}
		p.groups[g].idx = append(p.groups[g].idx, i)
	}
	return p
}

// unknown is every object's status before anything was read.
func (p *poller) unknown() []ObjectStatus {
	out := make([]ObjectStatus, len(p.objs))
	for i, o := range p.objs {
		out[i] = ObjectStatus{Kind: o.kind(), Namespace: o.namespace, Name: o.name(), Status: string(status.UnknownStatus), Message: "not read yet"}
	}
	return out
}

// complete reports whether every object has been read at least once.
func (p *poller) complete() bool {
	for _, r := range p.read {
		if !r {
			return false
		}
	}
	return true
}

// statuses computes every object's status from what was last read or watched.
func (p *poller) statuses() []ObjectStatus {
	out := make([]ObjectStatus, len(p.objs))
	for i, o := range p.objs {
		if p.settled[i] {
			out[i] = objectStatusOf(o, nil, true)
			continue
		}
		out[i] = objectStatusOf(o, p.live[i], p.found[i])
	}
	return out
}

// withObjects gives statuses the objects they were computed from.
func (p *poller) withObjects(statuses []ObjectStatus) []ObjectStatus {
	for i := range statuses {
		if !p.settled[i] && p.found[i] {
			statuses[i].Object = p.live[i]
		}
	}
	return statuses
}

// seed starts objects from what their write returned: an object is then
// as read at the write's resourceVersion, and a statusless one is settled.
func (p *poller) seed(written []*unstructured.Unstructured) {
	if len(written) == 0 {
		return
	}
	byKey := make(map[objectKey]*unstructured.Unstructured, len(written))
	for _, u := range written {
		byKey[keyOf(u, u.GetNamespace())] = u
	}
	for _, g := range p.groups {
		meta := statusless(g.gvr.GroupResource())
		for _, i := range g.idx {
			o := p.objs[i]
			u := byKey[keyOf(o.u, o.namespace)]
			if u == nil || u.GetResourceVersion() == "" {
				continue
			}
			p.live[i], p.found[i], p.read[i], p.version[i], p.readAt[i] = u, true, true, u.GetResourceVersion(), time.Now()
			if meta {
				p.live[i], p.settled[i] = nil, true
			}
		}
	}
}

// any reports whether pick holds for an unsettled object.
func (p *poller) any(pick func(i int) bool) bool {
	for i := range p.objs {
		if !p.settled[i] && pick(i) {
			return true
		}
	}
	return false
}

// poll reads once every unsettled object that pick selects. A group whose
// read fails keeps what it had; the first error is returned.
func (c *Cluster) poll(ctx context.Context, p *poller, pick func(i int) bool) error {
	var firstErr error
	for _, g := range p.groups {
		var pending []int
		for _, i := range g.idx {
			if !p.settled[i] && pick(i) {
				pending = append(pending, i)
			}
		}
		if len(pending) == 0 {
			continue
		}
		meta := statusless(g.gvr.GroupResource())
		live, listVersion, err := c.read(ctx, g, pending, p.objs, meta)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		at := time.Now()
		for _, i := range pending {
			u, found := live[p.objs[i].name()]
			p.live[i], p.found[i], p.read[i], p.readAt[i] = u, found, true, at
			p.version[i] = listVersion
			if u != nil && listVersion == "" {
				p.version[i] = u.GetResourceVersion()
			}
			if meta && found {
				p.settled[i] = true
			}
		}
	}
	return firstErr
}

// read fetches the named objects of one group: one List when there are
// several (returning the list's resourceVersion), else a GET. With meta only
// metadata is fetched (and the returned objects are nil; presence is what
// counts).
func (c *Cluster) read(ctx context.Context, g pollGroup, idx []int, objs []object, meta bool) (map[string]*unstructured.Unstructured, string, error) {
	found := map[string]*unstructured.Unstructured{}
	if len(idx) > 1 {
		if meta {
			list, err := c.metadata.Resource(g.gvr).Namespace(g.namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, "", fmt.Errorf("list %s in %q: %w", g.gvr.Resource, g.namespace, err)
			}
			for _, item := range list.Items {
				found[item.Name] = nil
			}
			return found, list.ResourceVersion, nil
		}
		list, err := c.dynamic.Resource(g.gvr).Namespace(g.namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, "", fmt.Errorf("list %s in %q: %w", g.gvr.Resource, g.namespace, err)
		}
		for i := range list.Items {
			found[list.Items[i].GetName()] = &list.Items[i]
		}
		return found, list.GetResourceVersion(), nil
	}
	o := objs[idx[0]]
	var err error
	if meta {
		_, err = c.metadata.Resource(g.gvr).Namespace(g.namespace).Get(ctx, o.name(), metav1.GetOptions{})
		if err == nil {
			found[o.name()] = nil
		}
	} else {
		var u *unstructured.Unstructured
		u, err = c.dynamic.Resource(g.gvr).Namespace(g.namespace).Get(ctx, o.name(), metav1.GetOptions{})
		if err == nil {
			found[o.name()] = u
		}
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, "", fmt.Errorf("%s: %w", o, err)
	}
	return found, "", nil
}

// objectStatusOf computes one object's status from what a poll read: u is
// the live object, nil for statusless kinds (read as metadata) that exist.
func objectStatusOf(o object, u *unstructured.Unstructured, found bool) ObjectStatus {
	s := ObjectStatus{Kind: o.kind(), Namespace: o.namespace, Name: o.name()}
	switch {
	case !found:
		s.Status, s.Message = string(status.NotFoundStatus), "not found"
	case u == nil:
		s.Status, s.Message = string(status.CurrentStatus), "exists"
	default:
		res, err := status.Compute(u)
		if err != nil {
			s.Status, s.Message = string(status.UnknownStatus), err.Error()
			break
		}
		s.Status, s.Message = string(res.Status), res.Message
	}
	return s
}

// current reports whether object i was Current when last read or watched.
func (p *poller) current(i int) bool {
	if p.settled[i] {
		return true
	}
	return objectStatusOf(p.objs[i], p.live[i], p.found[i]).Current()
}
