package clusters

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// faultProxy is a real loopback HTTP reverse proxy in front of a real
// kube-apiserver, for the one fault a test cannot produce with the real
// thing: a network that stops delivering one client's requests. It logs
// every request it forwards. While stalled it holds new requests; on
// un-stall, a held request whose client has given up meanwhile is dropped,
// like a packet lost in the network, and a live one is forwarded.
type faultProxy struct {
	URL string

	mu      sync.Mutex
	gate    chan struct{}            // non-nil while stalled; closed to un-stall
	trigger func(*http.Request) bool // stall from the first request it matches
	stalled chan struct{}            // closed when a trigger fires
	log     []proxyRecord
	proxy   *httputil.ReverseProxy
}

// proxyRecord is one request the proxy forwarded or dropped.
type proxyRecord struct {
	Method  string
	Path    string
	Query   string
	At      time.Time
	Dropped bool
}

func (r proxyRecord) mutating() bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	q, _ := url.ParseQuery(r.Query)
	return q.Get("dryRun") != "All"
}

// newFaultProxy starts a proxy to the API server of upstream, which holds
// the credentials; clients of the proxy need none.
func newFaultProxy(t *testing.T, upstream *rest.Config) *faultProxy {
	t.Helper()
	target, err := url.Parse(upstream.Host)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := rest.TransportFor(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{proxy: &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:     rt,
		FlushInterval: -1, // watches stream
		ErrorLog:      log.New(io.Discard, "", 0),
	}}
	srv := httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = srv.URL
	t.Cleanup(func() {
		p.unstall()
		srv.CloseClientConnections()
		srv.Close()
	})
	return p
}

func (p *faultProxy) serve(w http.ResponseWriter, r *http.Request) {
	// Take the whole body first: net/http notices a client that hangs up
	// only once the body is read, and a request whose client gave up must
	// be recognisable as such.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		p.record(r, true)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	p.mu.Lock()
	if p.trigger != nil && p.gate == nil && p.trigger(r) {
		p.gate = make(chan struct{})
		p.trigger = nil
		close(p.stalled)
	}
	gate := p.gate
	p.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
		}
	}
	if r.Context().Err() != nil {
		p.record(r, true)
		return
	}
	p.record(r, false)
	p.proxy.ServeHTTP(w, r)
}

func (p *faultProxy) record(r *http.Request, dropped bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, proxyRecord{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, At: time.Now(), Dropped: dropped})
}

// stall holds every request from now on until unstall.
func (p *faultProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
}

// stallWhen arms a stall that starts with the first request match
// accepts, which is held too: the network dies just as that request goes
// out. The returned channel is closed then.
func (p *faultProxy) stallWhen(match func(*http.Request) bool) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trigger = match
	p.stalled = make(chan struct{})
	return p.stalled
}

func (p *faultProxy) unstall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

func (p *faultProxy) records() []proxyRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]proxyRecord(nil), p.log...)
}

// connectVia connects to the test cluster through p, with a kubeconfig of
// its own whose only server is the proxy.
func connectVia(ctx context.Context, t *testing.T, p *faultProxy, tweak ...func(*Options)) *Cluster {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[testCluster] = &clientcmdapi.Cluster{Server: p.URL}
	cfg.AuthInfos["proxy"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts[testCluster] = &clientcmdapi.Context{Cluster: testCluster, AuthInfo: "proxy"}
	cfg.CurrentContext = testCluster
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.Kubeconfig = path
	opts.Context = testCluster
	for _, f := range tweak {
		f(&opts)
	}
	c, err := Connect(ctx, testCluster, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
