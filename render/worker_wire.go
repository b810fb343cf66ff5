package render

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The conversation between a parent and its render worker, over the
// worker's stdin and stdout. Every message is a frame: a 4-byte big-endian
// body length, a type byte, the body. The worker says hello once; then, for
// each render, the parent sends msgRender, the worker sends zero or more
// msgLookup, each answered by one msgLookupReply, and finally msgAnswer.
const (
	msgHello       byte = 'H'
	msgRender      byte = 'R'
	msgLookup      byte = 'Q'
	msgLookupReply byte = 'q'
	msgAnswer      byte = 'A'
)

// workerProtocol is the hello's body: a program that is not a render worker
// (or another version of one) is refused before it is sent anything.
const workerProtocol = "tandem-render-worker/3"

// maxFrame bounds a frame's body in both directions. It is above what a
// render can need (Helm caps a loaded chart at 100 MiB decompressed) and
// keeps a worker that writes garbage from making the parent allocate
// without bound: a body is read as it arrives, never allocated up front.
const maxFrame = 512 << 20

func writeFrame(w *bufio.Writer, typ byte, body []byte) error {
	if len(body) > maxFrame {
		return fmt.Errorf("message of %d bytes is larger than %d", len(body), maxFrame)
	}
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(body)))
	hdr[4] = typ
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	return w.Flush()
}

// readFrame returns io.EOF only when the stream ends between frames.
func readFrame(r *bufio.Reader) (byte, []byte, error) {
	return readFrameLimit(r, maxFrame)
}

// frameTooLarge is a frame whose body is more than its reader accepts,
// though not more than any frame may be: a worker's too large answer.
type frameTooLarge struct {
	typ      byte
	n, limit int64
}

func (e *frameTooLarge) Error() string {
	return fmt.Sprintf("message %q of %d bytes is larger than the limit of %d", e.typ, e.n, e.limit)
}

// readFrameLimit is readFrame for frames of at most limit bytes (at most
// maxFrame): a larger one is a *frameTooLarge, and is not read.
func readFrameLimit(r *bufio.Reader, limit int64) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("garbled frame: length %d is larger than %d", n, maxFrame)
	}
	if int64(n) > limit {
		return 0, nil, &frameTooLarge{typ: hdr[4], n: int64(n), limit: limit}
	}
	// Grown as bytes arrive (io.ReadAll's growth), not allocated from the
	// header's claim.
	body, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return 0, nil, err
	}
	if len(body) < int(n) {
		return 0, nil, io.ErrUnexpectedEOF
	}
	return hdr[4], body, nil
}

// renderJob is what the worker needs of a Request to run Renderer.template.
type renderJob struct {
	// chartID names the chart for this worker's lifetime; chart is nil when
	// the worker already holds it.
	chartID   uint64
	chart     *chart.Chart
	release   string
	namespace string
	caps      Capabilities
	upgrade   bool
	overlay   Overlay
	values    map[string]any
	// lookup says the parent has a LookupProvider: the worker's lookups are
	// sent to it. Without one the worker finds nothing itself.
	lookup bool
	// alsoUpgrade asks an install's render (upgrade false) to be rendered
	// a second time as an upgrade, for the render cache (answer.upgrade).
	// It follows the rest of the request on the wire and is not part of
	// the cache's key, as do, with it, the bounds the upgrade's render
	// must keep within so that the install's does not fail for it:
	// maxAnswer, the most bytes the parent reads of the answer, and
	// within, the time the parent waits for it.
	alsoUpgrade bool
	maxAnswer   int64
	within      time.Duration
}

// encodeRest encodes everything but the chart id and the chart, which
// lead the request (see workerPool.template): the request's part is encoded
// once, whichever worker gets it and whether or not it holds the chart.
func (j *renderJob) encodeRest() ([]byte, error) {
	e := &encoder{}
	e.str(j.release)
	e.str(j.namespace)
	e.str(j.caps.KubeVersion)
	e.strs(j.caps.APIVersions)
	e.bool(j.caps.Discovered)
	e.bool(j.upgrade)
	o := j.overlay
	e.str(o.Release)
	e.str(o.Cluster)
	e.str(string(o.Role))
	e.bool(o.ScaleToZero)
	e.str(o.DNSPrefix)
	e.varint(int64(o.ActiveWeight))
	e.bool(o.RunStandbyHooks)
	e.bool(o.Knobs != nil)
	if k := o.Knobs; k != nil {
		e.bool(k.ScaleDown)
		e.bool(k.SuspendCronJobs)
		e.varint(int64(k.Weight))
	}
	e.value(j.values)
	e.bool(j.lookup)
	if e.err != nil {
		return nil, fmt.Errorf("values: %w", e.err)
	}
	return e.buf, nil
}

func decodeRenderJob(body []byte) (*renderJob, error) {
	d := &decoder{buf: body}
	j := &renderJob{}
	j.chartID = d.uvarint()
	j.chart = d.chart()
	j.release = d.str()
	j.namespace = d.str()
	j.caps.KubeVersion = d.str()
	j.caps.APIVersions = d.strs()
	j.caps.Discovered = d.bool()
	j.upgrade = d.bool()
	j.overlay.Release = d.str()
	j.overlay.Cluster = d.str()
	j.overlay.Role = Role(d.str())
	j.overlay.ScaleToZero = d.bool()
	j.overlay.DNSPrefix = d.str()
	j.overlay.ActiveWeight = int(d.varint())
	j.overlay.RunStandbyHooks = d.bool()
	if d.bool() {
		j.overlay.Knobs = &Knobs{ScaleDown: d.bool(), SuspendCronJobs: d.bool(), Weight: int(d.varint())}
	}
	v := d.value()
	j.lookup = d.bool()
	if j.alsoUpgrade = d.bool(); j.alsoUpgrade {
		j.maxAnswer = int64(d.uvarint())
		j.within = time.Duration(d.varint())
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("render request: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok && v != nil {
		return nil, fmt.Errorf("render request: values are a %T", v)
	}
	j.values = m
	return j, nil
}

// finish reports a malformed body, or bytes left over after it.
func (d *decoder) finish() error {
	if d.err != nil {
		return d.err
	}
	if len(d.buf) > 0 {
		return fmt.Errorf("%d bytes left over", len(d.buf))
	}
	return nil
}

// answer is the worker's reply to a render: Renderer.template's result, or
// its error's text.
type answer struct {
	rendered
	err string // "" when the render succeeded
	// upgrade is, for a request with alsoUpgrade, the same request
	// rendered as an upgrade; nil when it was not asked for, or when either
	// render called lookup or failed.
	upgrade *rendered
	// retire says the worker gave up waiting for the upgrade's render,
	// which still runs: it must not be sent another request.
	retire bool
}

func (a *answer) encode() []byte {
	e := &encoder{}
	e.str(a.err)
	e.str(a.manifest)
	e.str(a.hooks)
	e.bool(a.usedLookup)
	e.bool(a.upgrade != nil)
	if a.upgrade != nil {
		e.str(a.upgrade.manifest)
		e.str(a.upgrade.hooks)
	}
	e.bool(a.retire)
	return e.buf
}

func decodeAnswer(body []byte) (*answer, error) {
	d := &decoder{buf: body}
	a := &answer{}
	a.err = d.str()
	a.manifest = d.str()
	a.hooks = d.str()
	a.usedLookup = d.bool()
	if d.bool() {
		a.upgrade = &rendered{manifest: d.str(), hooks: d.str()}
	}
	a.retire = d.bool()
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("render answer: %w", err)
	}
	return a, nil
}

// Lookup operations, as Helm's lookup function makes them
// (engine.newLookupFunction, helm v3.22): GetClientFor, then, on the
// client it returned (namespaced or not), Get of one object or List.
const (
	opClient byte = 'c'
	opGet    byte = 'g'
	opList   byte = 'l'
)

// lookupCall is one of the worker's calls on the parent's LookupProvider.
type lookupCall struct {
	op               byte
	apiVersion, kind string // opClient
	// client is the opClient reply's id the call is made on (opGet, opList).
	client uint64
	// namespace is set when Helm called Namespace on the client.
	namespace    string
	hasNamespace bool
	name         string // opGet
}

func (c *lookupCall) encode() []byte {
	e := &encoder{}
	e.u8(c.op)
	e.str(c.apiVersion)
	e.str(c.kind)
	e.uvarint(c.client)
	e.str(c.namespace)
	e.bool(c.hasNamespace)
	e.str(c.name)
	return e.buf
}

func decodeLookupCall(body []byte) (*lookupCall, error) {
	d := &decoder{buf: body}
	c := &lookupCall{}
	c.op = d.u8()
	c.apiVersion = d.str()
	c.kind = d.str()
	c.client = d.uvarint()
	c.namespace = d.str()
	c.hasNamespace = d.bool()
	c.name = d.str()
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("lookup call: %w", err)
	}
	switch c.op {
	case opClient, opGet, opList:
		return c, nil
	}
	return nil, fmt.Errorf("lookup call: unknown operation %q", c.op)
}

// lookupReply is the parent's answer to a lookupCall.
type lookupReply struct {
	err *remoteError
	// opClient
	client     uint64
	namespaced bool
	// opGet and opList: found is false for a nil object with a nil error.
	found  bool
	object map[string]any
	items  []map[string]any // opList
}

func (r *lookupReply) encode() ([]byte, error) {
	e := &encoder{}
	e.bool(r.err != nil)
	if r.err != nil {
		e.str(r.err.msg)
		e.bool(r.err.status != nil)
		if r.err.status != nil {
			b, err := json.Marshal(r.err.status)
			if err != nil {
				return nil, fmt.Errorf("lookup error status: %w", err)
			}
			e.bytes(b)
		}
	}
	e.uvarint(r.client)
	e.bool(r.namespaced)
	e.bool(r.found)
	e.anyMap(r.object)
	e.length(len(r.items), r.items == nil)
	for _, it := range r.items {
		e.anyMap(it)
	}
	if e.err != nil {
		return nil, fmt.Errorf("lookup result: %w", e.err)
	}
	return e.buf, nil
}

func decodeLookupReply(body []byte) (*lookupReply, error) {
	d := &decoder{buf: body}
	r := &lookupReply{}
	if d.bool() {
		r.err = &remoteError{msg: d.str()}
		if d.bool() {
			b := d.bytes()
			if d.err == nil {
				r.err.status = &metav1.Status{}
				if err := json.Unmarshal(b, r.err.status); err != nil {
					return nil, fmt.Errorf("lookup reply: error status: %w", err)
				}
			}
		}
	}
	r.client = d.uvarint()
	r.namespaced = d.bool()
	r.found = d.bool()
	r.object = d.anyMap()
	if n := d.length(1); n >= 0 {
		r.items = make([]map[string]any, n)
		for i := range r.items {
			r.items[i] = d.anyMap()
		}
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("lookup reply: %w", err)
	}
	return r, nil
}

// remoteError is an error the parent's LookupProvider returned, as the
// worker's template sees it: the same text, and, for an API error, the same
// status, so that Helm's lookup still tells NotFound (an empty result) from
// a failure.
type remoteError struct {
	msg    string
	status *metav1.Status
}

func (e *remoteError) Error() string { return e.msg }

// asRemoteError flattens err for the wire.
func asRemoteError(err error) *remoteError {
	if err == nil {
		return nil
	}
	r := &remoteError{msg: err.Error()}
	var st interface{ Status() metav1.Status }
	if errors.As(err, &st) {
		s := st.Status()
		r.status = &s
	}
	return r
}

// wrapped returns the error the worker hands to Helm: one that is an
// apierrors.APIStatus when the parent's was.
func (e *remoteError) wrapped() error {
	if e == nil {
		return nil
	}
	if e.status != nil {
		return &remoteStatusError{remoteError: e}
	}
	return e
}

// remoteStatusError is a remoteError that carries an API status.
type remoteStatusError struct{ *remoteError }

func (e *remoteStatusError) Status() metav1.Status { return *e.status }
