//go:build linux

package render

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// workerPids records the workers a Renderer starts.
type workerPids struct {
	mu   sync.Mutex
	pids []int
}

func watchWorkers(r *Renderer) *workerPids {
	w := &workerPids{}
	r.workerStarted = func(pid int) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.pids = append(w.pids, pid)
	}
	return w
}

func (w *workerPids) all() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.pids)
}

// assertReaped checks that every worker is gone: neither running nor a
// zombie (signal 0 reaches a zombie; only a reaped pid answers ESRCH).
func assertReaped(t *testing.T, pids []int) {
	t.Helper()
	if len(pids) == 0 {
		t.Error("no worker was started")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("worker %d still exists after the render returned (kill -0: %v)", pid, err)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("/proc/%d still exists (%v)", pid, err)
		}
	}
}

// listLookup is a cluster that serves Helm's lookup in full: gets and
// lists, of namespaced and cluster-scoped kinds. It records each call, so
// that a test can hold the isolated render's calls to the in-process one's.
type listLookup struct {
	objects []map[string]any
	listErr error // returned by every List when set

	mu    sync.Mutex
	calls []string // guarded by mu
}

func newListLookup() *listLookup {
	obj := func(kind, ns, name string, extra map[string]any) map[string]any {
		md := map[string]any{"name": name}
		if ns != "" {
			md["namespace"] = ns
		}
		o := map[string]any{"apiVersion": "v1", "kind": kind, "metadata": md}
		for k, v := range extra {
			o[k] = v
		}
		return o
	}
	return &listLookup{objects: []map[string]any{
		obj("ConfigMap", "ns", "a", nil),
		obj("ConfigMap", "ns", "settings", map[string]any{
			"data": map[string]any{"limit": "10"},
			// Integers from the API server are int64: a lossy encoding would
			// print 1e+06.
			"spec": map[string]any{"limit": int64(1000000)},
		}),
		obj("ConfigMap", "other", "elsewhere", nil),
		obj("Namespace", "", "ns", map[string]any{"metadata": map[string]any{"name": "ns", "uid": "uid-123"}}),
	}}
}

func (f *listLookup) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *listLookup) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *listLookup) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	f.record("client %s %s", apiVersion, kind)
	namespaced := !ClusterScoped(kind)
	return listResource{notFound: notFound{gr: schema.GroupResource{Resource: strings.ToLower(kind) + "s"}}, f: f, apiVersion: apiVersion, kind: kind}, namespaced, nil
}

type listResource struct {
	notFound
	f                *listLookup
	apiVersion, kind string
	ns               string
	hasNS            bool
}

func (r listResource) Namespace(ns string) dynamic.ResourceInterface {
	r.ns, r.hasNS = ns, true
	return r
}

func (r listResource) match(o map[string]any) bool {
	md, _ := o["metadata"].(map[string]any)
	ns, _ := md["namespace"].(string)
	return o["apiVersion"] == r.apiVersion && o["kind"] == r.kind && (!r.hasNS || ns == r.ns)
}

func (r listResource) Get(ctx context.Context, name string, opts metav1.GetOptions, sub ...string) (*unstructured.Unstructured, error) {
	r.f.record("get %s namespace(%v, %q) %q", r.kind, r.hasNS, r.ns, name)
	for _, o := range r.f.objects {
		md, _ := o["metadata"].(map[string]any)
		if r.match(o) && md["name"] == name {
			return &unstructured.Unstructured{Object: o}, nil
		}
	}
	return r.notFound.Get(ctx, name, opts, sub...)
}

func (r listResource) List(_ context.Context, _ metav1.ListOptions) (*unstructured.UnstructuredList, error) {
	r.f.record("list %s namespace(%v, %q)", r.kind, r.hasNS, r.ns)
	if r.f.listErr != nil {
		return nil, r.f.listErr
	}
	l := &unstructured.UnstructuredList{Object: map[string]any{
		"apiVersion": "v1", "kind": r.kind + "List", "metadata": map[string]any{"resourceVersion": "42"},
	}}
	for _, o := range r.f.objects {
		if r.match(o) {
			l.Items = append(l.Items, unstructured.Unstructured{Object: o})
		}
	}
	return l, nil
}

// equalityRequests returns every testdata chart that renders, and some
// that fail, in every variant of capabilities and install/upgrade, each for
// its own cluster (so no two conflict), with fresh lookup providers.
func equalityRequests(t *testing.T) ([]Request, []*listLookup) {
	t.Helper()
	live := base64.StdEncoding.EncodeToString([]byte("live-password"))
	caps := []Capabilities{
		{},
		{KubeVersion: "v1.29.3-eks-adc7111", APIVersions: []string{"monitoring.coreos.com/v1/ServiceMonitor"}},
		{KubeVersion: "1.31", APIVersions: []string{"v1", "apps/v1", "batch/v1", "monitoring.coreos.com/v1"}, Discovered: true},
		{APIVersions: []string{}, Discovered: true},
		{Discovered: true},
	}
	var lookups []*listLookup
	var reqs []Request
	add := func(req Request) {
		for _, c := range caps {
			for _, upgrade := range []bool{false, true} {
				r := req
				r.Capabilities, r.Upgrade = c, upgrade
				if _, ok := r.Lookup.(*listLookup); ok {
					l := newListLookup()
					l.listErr = r.Lookup.(*listLookup).listErr
					lookups = append(lookups, l)
					r.Lookup = l
				}
				r.Cluster = fmt.Sprintf("c%03d", len(reqs))
				r.Overlay.Cluster = r.Cluster
				reqs = append(reqs, r)
			}
		}
	}
	for _, name := range []string{"apiversions", "cronjob", "hooks", "installonly", "kubeversion"} {
		add(testdataRequest(t, name))
	}
	types := testdataRequest(t, "valuetypes")
	types.Values = []ValuesLayer{
		{Source: "values.yaml", File: []byte("extra: {a: 1}\n")},
		{Source: "set", Set: map[string]any{"big": 1000000, "flag": true, "word": `a,b\c`}},
	}
	add(types)
	list := testdataRequest(t, "lookuplist")
	list.Lookup = &listLookup{}
	add(list)
	pw := testdataRequest(t, "password")
	pw.Lookup = &fakeLookup{objects: map[string]map[string]any{
		"v1 Secret ns/r-auth": {"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "r-auth", "namespace": "ns"}, "data": map[string]any{"password": live}},
	}}
	add(pw)
	standby := exampleRequest(t, "blue", RoleStandby)
	add(standby)
	add(exampleRequest(t, "blue", RoleActive))

	// Failures, whose errors must read the same.
	for _, name := range []string{"badtpl", "noname", "nodeps"} {
		add(testdataRequest(t, name))
	}
	noKind := testdataRequest(t, "password")
	noKind.Lookup = &fakeLookup{err: &meta.NoKindMatchError{GroupKind: schema.GroupKind{Kind: "Secret"}}}
	add(noKind)
	forbidden := testdataRequest(t, "lookuplist")
	forbidden.Lookup = &listLookup{listErr: apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "", errors.New("no list for you"))}
	add(forbidden)
	return reqs, lookups
}

// TestIsolatedRenderEqualsInProcess: a render in workers is the in-process
// render, Result for Result (manifest, hooks, objects, digest, lookup
// use), error for error, and makes the same lookups.
func TestIsolatedRenderEqualsInProcess(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	opts := isolated(t, "serve")
	ctx := context.Background()

	inReqs, inLookups := equalityRequests(t)
	want, wantErr := New(DefaultOptions()).RenderAll(ctx, inReqs)

	isoReqs, isoLookups := equalityRequests(t)
	r := New(opts)
	workers := watchWorkers(r)
	got, gotErr := r.RenderAll(ctx, isoReqs)

	if wantErr == nil {
		t.Fatal("the in-process render has no failures: the error cases test nothing")
	}
	if gotErr == nil || gotErr.Error() != wantErr.Error() {
		t.Errorf("errors differ (-in-process +isolated):\n%s", cmp.Diff(wantErr.Error(), fmt.Sprint(gotErr)))
	}
	rendered := 0
	for i := range want {
		if want[i] != nil {
			rendered++
		}
		if diff := cmp.Diff(want[i], got[i], cmpopts.IgnoreFields(Result{}, "Chart")); diff != "" {
			t.Errorf("request %d (%s, %s, upgrade %v, capabilities %+v): results differ (-in-process +isolated):\n%s",
				i, inReqs[i].Cluster, inReqs[i].Chart.Dir, inReqs[i].Upgrade, inReqs[i].Capabilities, diff)
		}
		if got[i] != nil && got[i].Chart == nil {
			t.Errorf("request %d: no chart in the isolated result", i)
		}
	}
	if rendered < len(want)/2 {
		t.Errorf("only %d of %d requests rendered", rendered, len(want))
	}
	for i := range inLookups {
		if diff := cmp.Diff(inLookups[i].log(), isoLookups[i].log()); diff != "" {
			t.Errorf("lookup provider %d: calls differ (-in-process +isolated):\n%s", i, diff)
		}
	}
	pids := workers.all()
	if len(pids) > r.opts.Concurrency {
		t.Errorf("%d workers for concurrency %d", len(pids), r.opts.Concurrency)
	}
	assertReaped(t, pids)
}

// TestIsolatedLookupProxied: the worker's lookups reach the parent's
// provider (gets and lists, namespaced and cluster-scoped), and the chart
// sees what it returned.
func TestIsolatedLookupProxied(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r := New(isolated(t, "serve"))
	workers := watchWorkers(r)
	req := testdataRequest(t, "lookuplist")
	l := newListLookup()
	req.Lookup = l
	res, err := r.Render(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.UsedLookup {
		t.Error("UsedLookup not set")
	}
	for _, want := range []string{
		"configmaps: a,settings,",
		"list-kind: ConfigMapList",
		`list-version: "42"`,
		`namespace-uid: uid-123`,
		`limit: "10"`,
		`limit-type: int64`,
		`limit-value: "1000000"`,
		`absent: '{}'`,
		`nodes: "0"`,
	} {
		if !strings.Contains(res.Manifest, want) {
			t.Errorf("manifest lacks %q:\n%s", want, res.Manifest)
		}
	}
	wantCalls := []string{
		"client v1 ConfigMap", `list ConfigMap namespace(true, "ns")`,
		"client v1 Namespace", `get Namespace namespace(false, "") "ns"`,
		"client v1 ConfigMap", `get ConfigMap namespace(true, "ns") "settings"`,
		"client v1 Secret", `get Secret namespace(true, "ns") "absent"`,
		"client v1 Node", `list Node namespace(false, "")`,
	}
	if diff := cmp.Diff(wantCalls, l.log()); diff != "" {
		t.Errorf("calls on the parent's provider (-want +got):\n%s", diff)
	}
	assertReaped(t, workers.all())
}

// TestIsolatedPasswordKeptThroughLookup: the Bitnami pattern through a
// worker: the live password, not a new one.
func TestIsolatedPasswordKeptThroughLookup(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	live := base64.StdEncoding.EncodeToString([]byte("live-password"))
	lookup := &fakeLookup{objects: map[string]map[string]any{
		"v1 Secret ns/r-auth": {"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "r-auth", "namespace": "ns"}, "data": map[string]any{"password": live}},
	}}
	req := testdataRequest(t, "password")
	req.Lookup = lookup
	res, err := New(isolated(t, "serve")).Render(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := password(t, res); got != live {
		t.Errorf("password %q, want the live %q", got, live)
	}
	if !res.UsedLookup || lookup.calls.Load() != 1 {
		t.Errorf("UsedLookup %v after %d calls on the provider, want true after 1", res.UsedLookup, lookup.calls.Load())
	}

	// Without a provider the worker finds nothing itself, and says lookup was used.
	res, err = New(isolated(t, "serve")).Render(context.Background(), testdataRequest(t, "password"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := base64.StdEncoding.DecodeString(password(t, res)); err != nil || len(p) != 16 || !res.UsedLookup {
		t.Errorf("want a generated 16-character password and UsedLookup, got %q (%v), UsedLookup %v", p, err, res.UsedLookup)
	}
}

// tickLookup finds nothing, counting calls, until stopped: then it fails
// the next call, which ends the template that made it.
type tickLookup struct {
	calls     atomic.Int64
	stop      atomic.Bool
	first     chan struct{}
	firstOnce sync.Once
	failed    chan struct{}
	fail      sync.Once
}

func newTickLookup() *tickLookup {
	return &tickLookup{first: make(chan struct{}), failed: make(chan struct{})}
}

func (l *tickLookup) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	l.calls.Add(1)
	l.firstOnce.Do(func() { close(l.first) })
	if l.stop.Load() {
		l.fail.Do(func() { close(l.failed) })
		return nil, false, errors.New("stopped by the test")
	}
	return notFound{gr: schema.GroupResource{Resource: "configmaps"}}, true, nil
}

// TestInProcessRunawayKeepsRunning documents what isolation is for: in
// process, a render past its deadline returns an error but its template
// keeps running. (The runaway calls lookup on every turn, so the test sees
// it run on, then stops it by failing a lookup.)
func TestInProcessRunawayKeepsRunning(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	opts := DefaultOptions()
	opts.Timeout = time.Second
	req := testdataRequest(t, "runawaylookup")
	tick := newTickLookup()
	req.Lookup = tick
	_, err := New(opts).Render(context.Background(), req)
	want := `cluster "blue": release "r": render did not finish within 1s (a runaway template loop?)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	n := tick.calls.Load()
	for deadline := time.Now().Add(10 * time.Second); tick.calls.Load() == n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the abandoned in-process render stopped by itself: the leak this test documents is gone")
		}
	}
	tick.stop.Store(true)
	select {
	case <-tick.failed:
	case <-time.After(30 * time.Second):
		t.Fatal("the abandoned render made no lookup after it was told to stop")
	}
}

// TestIsolatedRunawayIsKilled: with isolation the same deadline kills the
// worker: the render fails with the in-process error text, and no process
// is left (TestInProcessRunawayKeepsRunning shows what is left without).
func TestIsolatedRunawayIsKilled(t *testing.T) {
	for _, chart := range []string{"runaway", "runawaylookup"} {
		t.Run(chart, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			opts := isolated(t, "serve")
			opts.Timeout = time.Second
			r := New(opts)
			workers := watchWorkers(r)
			req := testdataRequest(t, chart)
			tick := newTickLookup()
			req.Lookup = tick
			start := time.Now()
			_, err := r.Render(context.Background(), req)
			took := time.Since(start)
			want := `cluster "blue": release "r": render did not finish within 1s (a runaway template loop?)`
			if err == nil || err.Error() != want {
				t.Fatalf("got %v, want %s", err, want)
			}
			// A bound against a hang, not a measure of speed.
			if took > 30*time.Second {
				t.Errorf("the render returned after %s", took)
			}
			if chart == "runawaylookup" {
				// Not asserted: on a loaded machine the deadline may pass
				// before the worker has started. TestIsolatedCancelKillsWorker
				// kills a worker known to be in its lookups.
				t.Logf("%d lookups through the worker before it was killed", tick.calls.Load())
			}
			assertReaped(t, workers.all())
		})
	}
}

// TestIsolatedCancelKillsWorker: a ctx cancelled while a worker renders
// kills it, and the render returns ctx's error.
func TestIsolatedCancelKillsWorker(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r := New(isolated(t, "serve")) // the default 30s timeout: the cancel comes first
	workers := watchWorkers(r)
	req := testdataRequest(t, "runawaylookup")
	tick := newTickLookup()
	req.Lookup = tick
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-tick.first: // the worker is rendering
			cancel()
		case <-ctx.Done():
		}
	}()
	_, err := r.Render(ctx, req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	assertReaped(t, workers.all())
}

// TestIsolatedRenderAllReplacesKilledWorker: one runaway among good
// requests fails alone; its worker is killed and a new one serves the rest.
func TestIsolatedRenderAllReplacesKilledWorker(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	opts := isolated(t, "serve")
	// Long enough for a worker to start and render cronjob on a loaded
	// machine; the runaway runs for hours.
	opts.Timeout = 5 * time.Second
	opts.Concurrency = 1 // one worker at a time, requests in order
	r := New(opts)
	workers := watchWorkers(r)
	good := func(cluster string) Request {
		req := testdataRequest(t, "cronjob")
		req.Cluster = cluster
		return req
	}
	bomb := testdataRequest(t, "runaway")
	bomb.Release, bomb.Cluster = "bomb", "b"
	res, err := r.RenderAll(context.Background(), []Request{good("a"), good("b"), bomb, good("c")})
	if err == nil || !strings.Contains(err.Error(), `release "bomb": render did not finish`) {
		t.Fatalf("got %v, want the runaway's deadline error", err)
	}
	for _, i := range []int{0, 1, 3} {
		if res[i] == nil {
			t.Errorf("request %d failed with the runaway", i)
		}
	}
	pids := workers.all()
	if len(pids) != 2 {
		t.Errorf("%d workers started, want 2: the first for the requests up to the runaway, one replacing it", len(pids))
	}
	assertReaped(t, pids)
}

// TestIsolatedBrokenWorker: a worker that is no worker, crashes, or says
// what it should not fails the render with an error naming the release and
// what went wrong, without a hang, and is reaped.
func TestIsolatedBrokenWorker(t *testing.T) {
	tests := []struct {
		mode    string
		command []string // instead of the test binary
		want    []string
	}{
		{mode: "garbage", want: []string{"not a tandem render worker"}},
		{mode: "crash", want: []string{"read answer: EOF", "exit status 3", "worker crashed on purpose"}},
		{mode: "babble", want: []string{`unexpected message 'Z' while rendering`}},
		{mode: "huge", want: []string{"garbled frame", "larger than"}},
		{mode: "truncated", want: []string{"read answer: unexpected EOF"}},
		{mode: "silent", want: []string{"render did not finish within 1s"}},
		{mode: "exits", command: []string{"/bin/true"}, want: []string{"read hello: EOF", "exit status 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			opts := isolated(t, tt.mode)
			if tt.mode == "silent" {
				opts.Timeout = time.Second
			}
			if tt.command != nil {
				if _, err := os.Stat(tt.command[0]); err != nil {
					t.Skip(err)
				}
				opts.Isolation.Command = tt.command
			}
			r := New(opts)
			workers := watchWorkers(r)
			_, err := r.Render(context.Background(), testdataRequest(t, "cronjob"))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range append([]string{`cluster "blue": release "r": `}, tt.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			assertReaped(t, workers.all())
		})
	}

	t.Run("missing command", func(t *testing.T) {
		opts := isolated(t, "serve")
		opts.Isolation.Command = []string{"/nonexistent/tandem-render-worker"}
		_, err := New(opts).Render(context.Background(), testdataRequest(t, "cronjob"))
		if err == nil || !strings.Contains(err.Error(), `release "r": start render worker /nonexistent/tandem-render-worker`) {
			t.Errorf("got %v", err)
		}
	})
}

// TestIsolatedWorkerEnvironment: the worker gets none of the parent's
// environment but the few variables Isolation documents and its own Env.
func TestIsolatedWorkerEnvironment(t *testing.T) {
	t.Setenv("TANDEM_GIT_TOKEN", "secret-token")
	t.Setenv("KUBECONFIG", "/secret/kubeconfig")
	t.Setenv("GOMEMLIMIT", "1GiB")
	r := New(isolated(t, "serve"))
	var environ []string
	var readErr error
	r.workerStarted = func(pid int) {
		// Start returns once the worker's exec is under way; the kernel
		// fills in its environment a moment later.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			var b []byte
			if b, readErr = os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); readErr != nil || len(b) > 0 {
				environ = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
				return
			}
		}
		readErr = errors.New("the worker's environment stayed empty")
	}
	if _, err := r.Render(context.Background(), testdataRequest(t, "cronjob")); err != nil {
		t.Fatal(err)
	}
	if readErr != nil {
		t.Fatal(readErr)
	}
	allowed := map[string]bool{"PATH": true, "TMPDIR": true, "TZ": true, "GOMAXPROCS": true, "GOGC": true, "GOMEMLIMIT": true, "GODEBUG": true,
		testWorkerEnv: true, "GORACE": true}
	seen := map[string]bool{}
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		seen[k] = true
		if !allowed[k] {
			t.Errorf("the worker's environment has %s", k)
		}
		if strings.Contains(kv, "secret") {
			t.Errorf("the worker's environment has a secret: %s", k)
		}
	}
	if !seen[testWorkerEnv] || !seen["GOMEMLIMIT"] {
		t.Errorf("the worker lacks Isolation.Env or an inherited variable: %q", environ)
	}
	// The parent's GOMEMLIMIT gives way to the worker's own, below its
	// MemoryLimit.
	if want := memoryLimitEnv(DefaultWorkerMemoryLimit)[0]; !slices.Contains(environ, want) {
		t.Errorf("the worker's environment lacks %s: %q", want, environ)
	}
}

func TestWorkerEnv(t *testing.T) {
	got := workerEnv([]string{"HOME=/root", "PATH=/bin", "TANDEM_GIT_TOKEN=x", "TZ=UTC", "AWS_SECRET_ACCESS_KEY=y", "GODEBUG=a=1", "PATHX=z", "=odd"},
		[]string{"EXTRA=1"})
	want := []string{"PATH=/bin", "TZ=UTC", "GODEBUG=a=1", "EXTRA=1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
