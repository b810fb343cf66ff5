package render

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
)

// ServeWorker is a render worker's whole job (see Isolation): it says hello
// on out, then reads render requests from in, runs Helm's template engine
// on each and writes the answers, sending the templates' lookups back to
// the parent, until in ends (it then returns nil). It reads no file and no
// environment variable: the chart, values and lookup results all come from
// in.
//
// It returns at once when ctx is done, even with a render or a read under
// way, which end with the process: the program that calls it must exit when
// it returns.
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	s := &workerSession{
		out:    bufio.NewWriter(out),
		frames: make(chan frame),
		charts: map[uint64]*chart.Chart{},
	}
	stop := make(chan struct{})
	defer close(stop)
	go s.read(bufio.NewReader(in), stop)

	if err := writeFrame(s.out, msgHello, []byte(workerProtocol)); err != nil {
		return fmt.Errorf("render worker: hello: %w", err)
	}
	for {
		f, err := s.next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("render worker: %w", err)
		}
		if f.typ != msgRender {
			return fmt.Errorf("render worker: unexpected message %q while idle", f.typ)
		}
		a, err := s.render(ctx, f.body)
		if err != nil {
			return fmt.Errorf("render worker: %w", err)
		}
		if err := writeFrame(s.out, msgAnswer, a.encode()); err != nil {
			return fmt.Errorf("render worker: answer: %w", err)
		}
	}
}

// frame is one message read from the parent, or the error that ended the
// stream.
type frame struct {
	typ  byte
	body []byte
	err  error
}

// workerSession is a worker's side of the conversation. Writes to out are
// made by one goroutine at a time: the serving loop while no render runs,
// the render's lookups while one does.
type workerSession struct {
	out    *bufio.Writer
	frames chan frame
	// charts are the charts the parent has sent, by id, for the worker's
	// lifetime. Never mutated: template copies a chart before Helm sees it.
	charts map[uint64]*chart.Chart
}

// read feeds frames from in until in fails or ends (the last frame carries
// the error) or stop is closed.
func (s *workerSession) read(in *bufio.Reader, stop <-chan struct{}) {
	for {
		typ, body, err := readFrame(in)
		select {
		case s.frames <- frame{typ: typ, body: body, err: err}:
		case <-stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (s *workerSession) next(ctx context.Context) (frame, error) {
	select {
	case f := <-s.frames:
		return f, f.err
	case <-ctx.Done():
		return frame{}, ctx.Err()
	}
}

// render runs one request. Renderer.template runs on its own goroutine so
// that a done ctx returns at once, whatever the template does.
func (s *workerSession) render(ctx context.Context, body []byte) (*answer, error) {
	job, err := decodeRenderJob(body)
	if err != nil {
		return nil, err
	}
	ch := job.chart
	if ch != nil {
		s.charts[job.chartID] = ch
	} else if ch = s.charts[job.chartID]; ch == nil {
		return nil, fmt.Errorf("render request names chart %d, which was never sent", job.chartID)
	}
	req := Request{
		Release: job.release, Namespace: job.namespace, Capabilities: job.caps,
		Upgrade: job.upgrade, Overlay: job.overlay,
	}
	lk := &proxyLookup{s: s, ctx: ctx}
	if job.lookup {
		req.Lookup = lk
	}
	done := make(chan *answer, 1)
	start := time.Now()
	go func() {
		var r Renderer // template uses nothing of the Renderer
		rd, err := r.template(ctx, req, ch, job.values)
		a := &answer{rendered: rd}
		if err != nil {
			a = &answer{err: err.Error()}
		} else if job.alsoUpgrade && !job.upgrade && !rd.usedLookup {
			a.upgrade, a.retire = s.upgradeToo(ctx, req, ch, job, start)
			if a.upgrade != nil && int64(len(a.encode())) > job.maxAnswer {
				a.upgrade = nil // the install's answer alone fits
			}
		}
		done <- a
	}()
	select {
	case a := <-done:
		if lk.err != nil {
			// The conversation broke during a lookup; the render's own error
			// only says the lookup failed.
			return nil, lk.err
		}
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// upgradeToo renders req as an upgrade, for the render cache. It does not
// delay the install's answer past half the time the parent waits for it
// (from start): past that, it returns retire, and the upgrade's render is
// left running in a worker the parent then stops. Without a lookup
// provider: a render that calls lookup as an upgrade is not kept, and asks
// the parent nothing.
func (s *workerSession) upgradeToo(ctx context.Context, req Request, ch *chart.Chart, job *renderJob, start time.Time) (up *rendered, retire bool) {
	wait := job.within/2 - time.Since(start)
	if wait <= 0 {
		return nil, false
	}
	req.Upgrade, req.Lookup = true, nil
	done := make(chan *rendered, 1)
	go func() {
		var r Renderer
		u, err := r.template(ctx, req, ch, job.values)
		if err != nil || u.usedLookup {
			done <- nil
			return
		}
		done <- &u
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case u := <-done:
		return u, false
	case <-t.C:
		return nil, true
	}
}

// proxyLookup is the LookupProvider a worker's templates see when the
// parent has one: every call goes to the parent, which makes it on its own
// provider and sends back the result.
type proxyLookup struct {
	s   *workerSession
	ctx context.Context
	// err is the first failure of the conversation itself (not a lookup's
	// own error): the render's result is then meaningless. Written and read
	// by the render's goroutine, then read by render after it finished.
	err error
}

var _ LookupProvider = (*proxyLookup)(nil)

func (p *proxyLookup) call(c *lookupCall) (*lookupReply, error) {
	if p.err != nil {
		return nil, p.err
	}
	r, err := p.roundTrip(c)
	if err != nil {
		p.err = fmt.Errorf("lookup: %w", err)
		return nil, p.err
	}
	return r, nil
}

func (p *proxyLookup) roundTrip(c *lookupCall) (*lookupReply, error) {
	if err := writeFrame(p.s.out, msgLookup, c.encode()); err != nil {
		return nil, err
	}
	f, err := p.s.next(p.ctx)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if f.typ != msgLookupReply {
		return nil, fmt.Errorf("unexpected message %q while waiting for a lookup reply", f.typ)
	}
	return decodeLookupReply(f.body)
}

func (p *proxyLookup) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	r, err := p.call(&lookupCall{op: opClient, apiVersion: apiVersion, kind: kind})
	if err != nil {
		return nil, false, err
	}
	if r.err != nil {
		return nil, false, r.err.wrapped()
	}
	return proxyResource{p: p, client: r.client}, r.namespaced, nil
}

// proxyResource is a client the parent's provider returned. Helm's lookup
// only gets and lists; everything else is refused here, without asking the
// parent, as a render's lookups are read-only.
type proxyResource struct {
	p            *proxyLookup
	client       uint64
	namespace    string
	hasNamespace bool
}

var _ dynamic.NamespaceableResourceInterface = proxyResource{}

var errProxyReadOnly = errors.New("lookup through the render worker: only get and list are served")

func (r proxyResource) Namespace(ns string) dynamic.ResourceInterface {
	r.namespace, r.hasNamespace = ns, true
	return r
}

func (r proxyResource) Get(_ context.Context, name string, _ metav1.GetOptions, sub ...string) (*unstructured.Unstructured, error) {
	if len(sub) > 0 {
		return nil, errProxyReadOnly
	}
	rep, err := r.p.call(&lookupCall{op: opGet, client: r.client, namespace: r.namespace, hasNamespace: r.hasNamespace, name: name})
	if err != nil {
		return nil, err
	}
	if rep.err != nil {
		return nil, rep.err.wrapped()
	}
	if !rep.found {
		return nil, nil
	}
	return &unstructured.Unstructured{Object: rep.object}, nil
}

func (r proxyResource) List(context.Context, metav1.ListOptions) (*unstructured.UnstructuredList, error) {
	rep, err := r.p.call(&lookupCall{op: opList, client: r.client, namespace: r.namespace, hasNamespace: r.hasNamespace})
	if err != nil {
		return nil, err
	}
	if rep.err != nil {
		return nil, rep.err.wrapped()
	}
	if !rep.found {
		return nil, nil
	}
	l := &unstructured.UnstructuredList{Object: rep.object}
	if rep.items != nil {
		l.Items = make([]unstructured.Unstructured, len(rep.items))
		for i, it := range rep.items {
			l.Items[i] = unstructured.Unstructured{Object: it}
		}
	}
	return l, nil
}

func (proxyResource) Create(context.Context, *unstructured.Unstructured, metav1.CreateOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, errProxyReadOnly
}

func (proxyResource) Update(context.Context, *unstructured.Unstructured, metav1.UpdateOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, errProxyReadOnly
}

func (proxyResource) UpdateStatus(context.Context, *unstructured.Unstructured, metav1.UpdateOptions) (*unstructured.Unstructured, error) {
	return nil, errProxyReadOnly
}

func (proxyResource) Delete(context.Context, string, metav1.DeleteOptions, ...string) error {
	return errProxyReadOnly
}

func (proxyResource) DeleteCollection(context.Context, metav1.DeleteOptions, metav1.ListOptions) error {
	return errProxyReadOnly
}

func (proxyResource) Watch(context.Context, metav1.ListOptions) (watch.Interface, error) {
	return nil, errProxyReadOnly
}

func (proxyResource) Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, errProxyReadOnly
}

func (proxyResource) Apply(context.Context, string, *unstructured.Unstructured, metav1.ApplyOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, errProxyReadOnly
}

func (proxyResource) ApplyStatus(context.Context, string, *unstructured.Unstructured, metav1.ApplyOptions) (*unstructured.Unstructured, error) {
	return nil, errProxyReadOnly
}
