package bench

import (
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// apiProxy is an HTTPS (HTTP/2) reverse proxy in front of one kube-apiserver
// that counts every request by kind. Clients reach it without credentials;
// it talks to the apiserver as the cluster admin. Both tandem and the helm
// CLI use it through the kubeconfig, so their requests are counted the same
// way, on the wire.
type apiProxy struct {
	URL string
	CA  []byte // PEM of the proxy's certificate, for the kubeconfig

	n     [numKinds]atomic.Int64
	nanos [numKinds]atomic.Int64 // time from request to the end of the response
	bytes [numKinds]atomic.Int64 // response body bytes
}

// requestKind classifies an API request.
type requestKind int

const (
	kindDiscovery requestKind = iota // /version, /api, /apis, /openapi, group versions
	kindGet                          // GET of one object
	kindList                         // GET of a collection
	kindWatch                        // GET ?watch=true
	kindDryRun                       // a write with ?dryRun=All
	kindWrite                        // create, update, patch, delete
	numKinds
)

func startProxy(tb testing.TB, upstream *rest.Config) *apiProxy {
	tb.Helper()
	target, err := url.Parse(upstream.Host)
	if err != nil {
		tb.Fatal(err)
	}
	rt, err := rest.TransportFor(upstream)
	if err != nil {
		tb.Fatal(err)
	}
	p := &apiProxy{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Del("Authorization")
		},
		Transport:     rt,
		FlushInterval: -1, // watches stream
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := classify(r)
		p.n[k].Add(1)
		start := time.Now()
		cw := &countingWriter{ResponseWriter: w}
		rp.ServeHTTP(cw, r)
		p.nanos[k].Add(int64(time.Since(start)))
		p.bytes[k].Add(cw.n)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	p.URL = srv.URL
	p.CA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return p
}

// classify reads a Kubernetes API path:
// /api/v1[/namespaces/NS]/RESOURCE[/NAME[/SUB]] or /apis/GROUP/VERSION/...
func classify(r *http.Request) requestKind {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var rest []string
	switch {
	case segs[0] == "api" && len(segs) > 2:
		rest = segs[2:]
	case segs[0] == "apis" && len(segs) > 3:
		rest = segs[3:]
	default:
		return kindDiscovery
	}
	if rest[0] == "namespaces" && len(rest) > 2 {
		rest = rest[2:] // a namespaced resource; /namespaces[/NAME] is the namespaces resource itself
	}
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case q.Get("watch") == "true" || q.Get("watch") == "1":
			return kindWatch
		case len(rest) == 1:
			return kindList
		default:
			return kindGet
		}
	default:
		if len(q["dryRun"]) > 0 {
			return kindDryRun
		}
		return kindWrite
	}
}

// countingWriter counts response bytes; Unwrap lets the reverse proxy
// flush through it (watches stream).
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// requestCounts is a snapshot of a proxy's counters.
type requestCounts [numKinds]int64

func (p *apiProxy) counts() requestCounts {
	var c requestCounts
	for i := range c {
		c[i] = p.n[i].Load()
	}
	return c
}

// traffic is a snapshot of the time spent in requests and the bytes of
// their responses, by kind. Requests overlap, so times add up to more than
// the wall time; they show where a run's requests spend theirs.
type traffic struct {
	time  [numKinds]time.Duration
	bytes [numKinds]int64
}

func (p *apiProxy) traffic() traffic {
	var t traffic
	for i := range t.time {
		t.time[i] = time.Duration(p.nanos[i].Load())
		t.bytes[i] = p.bytes[i].Load()
	}
	return t
}

func (t traffic) add(o traffic) traffic {
	for i := range t.time {
		t.time[i] += o.time[i]
		t.bytes[i] += o.bytes[i]
	}
	return t
}

func (t traffic) sub(o traffic) traffic {
	for i := range t.time {
		t.time[i] -= o.time[i]
		t.bytes[i] -= o.bytes[i]
	}
	return t
}

var kindNames = [numKinds]string{"discovery", "get", "list", "watch", "dry-run", "write"}

// String lists each kind's time and response size.
func (t traffic) String() string {
	var parts []string
	for i := range t.time {
		if t.time[i] == 0 && t.bytes[i] == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.1f s, %.1f MiB", kindNames[i], t.time[i].Seconds(), float64(t.bytes[i])/(1<<20)))
	}
	return strings.Join(parts, "; ")
}

func (c requestCounts) add(o requestCounts) requestCounts {
	for i := range c {
		c[i] += o[i]
	}
	return c
}

func (c requestCounts) sub(o requestCounts) requestCounts {
	for i := range c {
		c[i] -= o[i]
	}
	return c
}

func (c requestCounts) total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name, method, target string
		want                 requestKind
	}{
		{"version", "GET", "/version", kindDiscovery},
		{"core group", "GET", "/api/v1", kindDiscovery},
		{"group version", "GET", "/apis/apps/v1", kindDiscovery},
		{"openapi", "GET", "/openapi/v3/apis/apps/v1", kindDiscovery},
		{"list namespaced", "GET", "/apis/apps/v1/namespaces/shop/deployments", kindList},
		{"list all namespaces", "GET", "/api/v1/secrets?labelSelector=owner%3Dhelm", kindList},
		{"list namespaces", "GET", "/api/v1/namespaces", kindList},
		{"get namespace", "GET", "/api/v1/namespaces/shop", kindGet},
		{"get object", "GET", "/apis/apps/v1/namespaces/shop/deployments/web", kindGet},
		{"get status", "GET", "/apis/apps/v1/namespaces/shop/deployments/web/status", kindGet},
		{"watch", "GET", "/api/v1/namespaces/shop/pods?watch=true", kindWatch},
		{"dry-run apply", "PATCH", "/apis/apps/v1/namespaces/shop/deployments/web?dryRun=All&fieldManager=tandem", kindDryRun},
		{"apply", "PATCH", "/apis/apps/v1/namespaces/shop/deployments/web?fieldManager=tandem", kindWrite},
		{"create", "POST", "/api/v1/namespaces/shop/secrets", kindWrite},
		{"create namespace", "POST", "/api/v1/namespaces", kindWrite},
		{"delete", "DELETE", "/api/v1/namespaces/shop/configmaps/web", kindWrite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(httptest.NewRequest(tc.method, tc.target, nil)); got != tc.want {
				t.Errorf("classify(%s %s) = %d, want %d", tc.method, tc.target, got, tc.want)
			}
		})
	}
}
