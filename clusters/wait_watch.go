package clusters

import (
	"context"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/apimachinery/pkg/watch"
)

// watches are WaitHealthy's watches: one per object that has a status,
// started from the resourceVersion the object was read at, so that no
// change after that read is missed. Each forwards its events to one channel
// that WaitHealthy's loop reads; stop ends them all.
//
// Why not kstatus' own watcher (cli-utils pkg/kstatus/watcher): it lists and
// watches whole kinds per namespace for every caller, which for a thousand
// releases in one namespace means every wait streams every release's
// Deployments; a watch per object, with a field selector, streams only what
// the wait is about.
type watches struct {
	c      *Cluster
	events chan objectEvent
	done   chan struct{}
	wg     sync.WaitGroup
	// open holds each object's watch, nil when it has none. Used by
	// WaitHealthy's goroutine only.
	open []watch.Interface
}

// objectEvent is an event of the watch of object i; closed says the watch
// ended (its channel closed, or it reported an error).
type objectEvent struct {
	i      int
	w      watch.Interface
	ev     watch.Event
	closed bool
}

func newWatches(c *Cluster, n int) *watches {
	return &watches{c: c, events: make(chan objectEvent), done: make(chan struct{}), open: make([]watch.Interface, n)}
}

// stop ends every watch and waits for their goroutines.
func (w *watches) stop() {
	close(w.done)
	for _, x := range w.open {
		if x != nil {
			x.Stop()
		}
	}
	w.wg.Wait()
}

// cover starts a watch for every object with a status that has been read,
// is not Current and is not watched yet, and reports whether every
// unsettled object that is not Current is watched now (otherwise
// WaitHealthy reads them again at its interval). Statusless kinds are not
// watched: they are settled once found. A Current object is read again
// before the wait ends (see WaitHealthy), not watched: most releases' Service
// and Ingress are Current from the start.
func (w *watches) cover(ctx context.Context, p *poller) bool {
	all := true
	for _, g := range p.groups {
		if statusless(g.gvr.GroupResource()) {
			for _, i := range g.idx {
				all = all && p.settled[i]
			}
			continue
		}
		for _, i := range g.idx {
			if w.open[i] != nil || (p.read[i] && p.current(i)) {
				continue
			}
			if p.version[i] == "" {
				all = false
				continue
			}
			o := p.objs[i]
			x, err := w.c.dynamic.Resource(g.gvr).Namespace(g.namespace).Watch(ctx, metav1.ListOptions{
				ResourceVersion: p.version[i],
				FieldSelector:   fields.OneTermEqualSelector("metadata.name", o.name()).String(),
			})
			if err != nil {
				// Read again at the interval; the next read gives a fresh
				// version to watch from (the old one may have expired).
				p.version[i] = ""
				all = false
				continue
			}
			w.open[i] = x
			w.wg.Add(1)
			go w.forward(i, x)
		}
	}
	return all
}

func (w *watches) forward(i int, x watch.Interface) {
	defer w.wg.Done()
	for ev := range x.ResultChan() {
		select {
		case w.events <- objectEvent{i: i, w: x, ev: ev}:
		case <-w.done:
			return
		}
		if ev.Type == watch.Error {
			break
		}
	}
	select {
	case w.events <- objectEvent{i: i, w: x, closed: true}:
	case <-w.done:
	}
}

// apply takes a watch event into the poller's state. An event older than
// what a read since returned is ignored; a watch that ended or failed is
// closed, and the object is read again (and watched anew) at the interval.
func (w *watches) apply(p *poller, e objectEvent) {
	if w.open[e.i] != e.w {
		return // from a watch already replaced
	}
	end := func() {
		e.w.Stop()
		w.open[e.i] = nil
		p.version[e.i] = ""
	}
	if e.closed || e.ev.Type == watch.Error {
		end()
		return
	}
	u, ok := e.ev.Object.(*unstructured.Unstructured)
	if !ok || u.GetName() != p.objs[e.i].name() {
		return
	}
	if older(u.GetResourceVersion(), p.live[e.i]) {
		return
	}
	switch e.ev.Type {
	case watch.Added, watch.Modified:
		p.live[e.i], p.found[e.i] = u, true
	case watch.Deleted:
		p.live[e.i], p.found[e.i] = nil, false
	}
}

// older reports whether resourceVersion v is older than the object held.
// Versions that do not compare (an aggregated API's) are taken as newer:
// a watch delivers in order.
func older(v string, held *unstructured.Unstructured) bool {
	if held == nil {
		return false
	}
	cmp, err := resourceversion.CompareResourceVersion(v, held.GetResourceVersion())
	return err == nil && cmp < 0
}
