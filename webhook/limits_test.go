package webhook

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const mib = 1 << 20

// countingReader counts the bytes the handler pulls from the body.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// paddedPush is a valid push of exactly size bytes (JSON allows trailing blanks).
func paddedPush(f flavor, size int) []byte {
	b := f.push("refs/heads/main", sha)
	return append(b, bytes.Repeat([]byte(" "), size-len(b))...)
}

// TestBodyLimit: one byte over MaxBodyBytes is 413 and no hint, even when
// correctly signed; with a Content-Length the body is not read at all, and
// without one (chunked) no more than MaxBodyBytes+1 bytes are read. Exactly
// MaxBodyBytes is accepted.
func TestBodyLimit(t *testing.T) {
	for _, f := range flavors {
		for _, tt := range []struct {
			name      string
			size      int
			chunked   bool
			wantCode  int
			wantRead  int64 // most bytes the handler may pull from the body
			wantHints int
		}{
			{name: "limit+1 with Content-Length", size: mib + 1, wantCode: http.StatusRequestEntityTooLarge, wantRead: 0},
			{name: "limit+1 chunked", size: mib + 1, chunked: true, wantCode: http.StatusRequestEntityTooLarge, wantRead: mib + 1},
			{name: "far over the limit chunked", size: 8 * mib, chunked: true, wantCode: http.StatusRequestEntityTooLarge, wantRead: mib + 1},
			{name: "exactly the limit chunked", size: mib, chunked: true, wantCode: http.StatusAccepted, wantRead: mib, wantHints: 1},
			{name: "exactly the limit with Content-Length", size: mib, wantCode: http.StatusAccepted, wantRead: mib, wantHints: 1},
		} {
			t.Run(f.name+"/"+tt.name, func(t *testing.T) {
				r := newRig(t, nil)
				body := paddedPush(f, tt.size)
				cr := &countingReader{r: bytes.NewReader(body)}
				req := post(f.path, nil, f.headers(body, testSecret))
				req.Body = io.NopCloser(cr)
				if tt.chunked {
					req.ContentLength = -1
					req.TransferEncoding = []string{"chunked"}
				} else {
					req.ContentLength = int64(len(body))
				}
				rec := r.do(req)
				if rec.Code != tt.wantCode {
					t.Errorf("code = %d, want %d", rec.Code, tt.wantCode)
				}
				if got := cr.n.Load(); got > tt.wantRead {
					t.Errorf("handler read %d bytes of the body, want at most %d", got, tt.wantRead)
				}
				if got := len(r.takeHints()); got != tt.wantHints {
					t.Errorf("%d hints, want %d", got, tt.wantHints)
				}
				checkReply(t, rec)
			})
		}
	}
}

// TestMaxBodyBytesOption: the limit is the option, not a constant.
func TestMaxBodyBytesOption(t *testing.T) {
	r := newRig(t, func(o *Options) { o.MaxBodyBytes = 100 })
	for _, tt := range []struct {
		size int
		want int
	}{{100, http.StatusAccepted}, {101, http.StatusRequestEntityTooLarge}} {
		body := paddedPush(flavors[2], tt.size)
		req := post("/hooks/generic", body, flavors[2].headers(body, testSecret))
		req.ContentLength = -1 // make the handler find out by reading
		if rec := r.do(req); rec.Code != tt.want {
			t.Errorf("size %d: code = %d, want %d", tt.size, rec.Code, tt.want)
		}
	}
}

func TestWrongMethod(t *testing.T) {
	for _, f := range flavors {
		for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions} {
			t.Run(f.name+"/"+method, func(t *testing.T) {
				r := newRig(t, nil)
				body := f.push("refs/heads/main", sha)
				req := post(f.path, body, f.headers(body, testSecret))
				req.Method = method
				rec := r.do(req)
				if rec.Code != http.StatusMethodNotAllowed {
					t.Errorf("code = %d, want 405", rec.Code)
				}
				if got := rec.Header().Get("Allow"); got != "POST" {
					t.Errorf("Allow = %q, want POST", got)
				}
				if h := r.takeHints(); len(h) != 0 {
					t.Errorf("hints %v", h)
				}
			})
		}
	}
}

// TestDisabled: with no secret every path answers 404, whatever the method,
// and nothing is read or notified.
func TestDisabled(t *testing.T) {
	for _, secret := range [][]byte{nil, {}} {
		r := newRig(t, func(o *Options) { o.Secret = secret })
		for _, path := range []string{"/hooks/github", "/hooks/gitlab", "/hooks/generic", "/hooks/", "/hooks/other", "/"} {
			for _, method := range []string{http.MethodPost, http.MethodGet} {
				body := flavors[0].push("refs/heads/main", sha)
				cr := &countingReader{r: bytes.NewReader(body)}
				req := post(path, nil, map[string]string{
					"X-Hub-Signature-256": Sign(nil, body), "X-GitHub-Event": "push",
					"X-Gitlab-Token": "", "X-Gitlab-Event": "Push Hook", "X-Signature": Sign(nil, body),
				})
				req.Body, req.ContentLength, req.Method = io.NopCloser(cr), int64(len(body)), method
				if rec := r.do(req); rec.Code != http.StatusNotFound {
					t.Errorf("%s %s: code = %d, want 404", method, path, rec.Code)
				}
				if cr.n.Load() != 0 {
					t.Errorf("%s %s: body read", method, path)
				}
			}
		}
		if h := r.takeHints(); len(h) != 0 {
			t.Errorf("hints %v", h)
		}
	}
}

func TestUnknownPath(t *testing.T) {
	r := newRig(t, nil)
	for _, path := range []string{"/hooks/github/", "/hooks/GitHub", "/hooks/bitbucket", "/hooks", "/"} {
		if rec := r.do(post(path, nil, nil)); rec.Code != http.StatusNotFound {
			t.Errorf("%s: code = %d, want 404", path, rec.Code)
		}
	}
	for _, o := range r.takeObserved() {
		if o != (observation{"unknown", http.StatusNotFound}) {
			t.Errorf("observed %+v, want unknown/404", o)
		}
	}
}

// TestRateLimit: a source's failed authentications spend its budget; past
// it a failure is 429 with Retry-After instead of 401, and a request that
// cannot be authentic (no signature) is refused before its body is read. A
// correctly signed push is never refused for rate, even from a source that
// spent its budget. Another source has its own budget; X-Forwarded-For does
// not make a new source; after Retry-After the source may fail again.
func TestRateLimit(t *testing.T) {
	r := newRig(t, func(o *Options) { o.Rate, o.Burst = 0.5, 3 })
	f := flavors[0]
	body := f.push("refs/heads/main", sha)
	from := func(addr string, h map[string]string) *http.Request {
		req := post(f.path, body, h)
		req.RemoteAddr = addr
		return req
	}
	good := f.headers(body, testSecret)
	bad := f.headers(body, "guess")
	spoofed := f.headers(body, "guess")
	spoofed["X-Forwarded-For"] = "198.51.100.77"
	unsigned := from("192.0.2.1:1005", nil)
	unsignedBody := &countingReader{r: bytes.NewReader(body)}
	unsigned.Body = io.NopCloser(unsignedBody)

	steps := []struct {
		name string
		req  *http.Request
		want int
	}{
		{"first", from("192.0.2.1:1000", good), http.StatusAccepted},
		{"bad signature spends a token", from("192.0.2.1:1001", bad), http.StatusUnauthorized},
		{"bad signature spends a token", from("192.0.2.1:1002", bad), http.StatusUnauthorized},
		{"bad signature spends the last token", from("192.0.2.1:1003", bad), http.StatusUnauthorized},
		{"budget spent: a bad signature is 429 not 401", from("192.0.2.1:1004", bad), http.StatusTooManyRequests},
		{"budget spent: an unsigned one is 429 not 401", unsigned, http.StatusTooManyRequests},
		{"budget spent: a good signature is still accepted", from("192.0.2.1:1006", good), http.StatusAccepted},
		{"X-Forwarded-For is not a new source", from("192.0.2.1:1007", spoofed), http.StatusTooManyRequests},
		{"another source has its own budget", from("192.0.2.2:1000", bad), http.StatusUnauthorized},
	}
	for _, s := range steps {
		rec := r.do(s.req)
		if rec.Code != s.want {
			t.Fatalf("%s: code = %d, want %d", s.name, rec.Code, s.want)
		}
		if rec.Code == http.StatusTooManyRequests {
			if got := rec.Header().Get("Retry-After"); got != "2" { // one token at 0.5/s
				t.Errorf("%s: Retry-After = %q, want 2", s.name, got)
			}
		}
	}
	if n := unsignedBody.n.Load(); n != 0 {
		t.Errorf("the unsigned request over the budget had %d bytes of its body read, want 0", n)
	}
	r.advance(1 * time.Second)
	if rec := r.do(from("192.0.2.1:1008", bad)); rec.Code != http.StatusTooManyRequests {
		t.Errorf("after 1s: code = %d, want 429", rec.Code)
	} else if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Errorf("after 1s: Retry-After = %q, want 1", got)
	}
	r.advance(1 * time.Second)
	if rec := r.do(from("192.0.2.1:1009", bad)); rec.Code != http.StatusUnauthorized {
		t.Errorf("after 2s: code = %d, want 401", rec.Code)
	}
	if rec := r.do(from("192.0.2.1:1010", bad)); rec.Code != http.StatusTooManyRequests {
		t.Errorf("right after: code = %d, want 429", rec.Code)
	}
	if got := len(r.takeHints()); got != 2 {
		t.Errorf("%d hints, want 2 (both signed pushes from 192.0.2.1)", got)
	}
}

// TestRateLimitRealClock: New's own clock lets a tiny failure budget
// recover, and never stands in a signed request's way.
func TestRateLimitRealClock(t *testing.T) {
	opts := DefaultOptions()
	opts.Secret = []byte(testSecret)
	opts.Rate, opts.Burst = 2, 1 // a token every 500ms: wide margins on a busy machine
	h := New(opts)
	send := func(secret string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, post("/hooks/generic", nil, map[string]string{"X-Signature": Sign([]byte(secret), nil)}))
		return rec.Code
	}
	if got := send("guess"); got != http.StatusUnauthorized {
		t.Fatalf("first failure: %d, want 401", got)
	}
	if got := send("guess"); got != http.StatusTooManyRequests {
		t.Fatalf("second failure at once: %d, want 429", got)
	}
	if got := send(testSecret); got != http.StatusAccepted {
		t.Fatalf("signed, budget spent: %d, want 202", got)
	}
	time.Sleep(600 * time.Millisecond)
	if got := send("guess"); got != http.StatusUnauthorized {
		t.Fatalf("failure after 600ms: %d, want 401", got)
	}
}

// TestSourcesBounded: a flood from many addresses keeps at most MaxSources
// buckets.
func TestSourcesBounded(t *testing.T) {
	r := newRig(t, func(o *Options) { o.MaxSources = 50 })
	for i := range 1000 {
		req := post("/hooks/generic", nil, nil) // unsigned: a failure, charged to a new source
		req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:4242", i>>16&255, i>>8&255, i&255)
		if rec := r.do(req); rec.Code != http.StatusUnauthorized {
			t.Fatalf("request %d: code = %d, want 401", i, rec.Code)
		}
		if n := r.h.limiter.len(); n > 50 {
			t.Fatalf("after %d sources: %d tracked, cap 50", i+1, n)
		}
	}
	if n := r.h.limiter.len(); n != 50 {
		t.Errorf("%d sources tracked, want 50", n)
	}
}

// TestInFlight: beyond MaxInFlight bodies being read, requests get 503 at
// once; the slot frees when the first finishes.
func TestInFlight(t *testing.T) {
	r := newRig(t, func(o *Options) { o.MaxInFlight = 1 })
	body := flavors[2].push("refs/heads/main", sha)
	started := make(chan struct{})
	release := make(chan struct{})
	slow := post("/hooks/generic", nil, flavors[2].headers(body, testSecret))
	slow.Body = io.NopCloser(&gatedReader{r: bytes.NewReader(body), started: started, release: release})
	slow.ContentLength = -1
	done := make(chan int)
	go func() { done <- r.do(slow).Code }()
	<-started

	rec := r.do(post("/hooks/generic", body, flavors[2].headers(body, testSecret)))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("second while first reads: code = %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	close(release)
	if code := <-done; code != http.StatusAccepted {
		t.Errorf("slow request: code = %d, want 202", code)
	}
	if rec := r.do(post("/hooks/generic", body, flavors[2].headers(body, testSecret))); rec.Code != http.StatusAccepted {
		t.Errorf("after the slot freed: code = %d, want 202", rec.Code)
	}
}

// gatedReader signals its first Read and then blocks until released.
type gatedReader struct {
	r       io.Reader
	started chan struct{}
	release chan struct{}
	once    atomic.Bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.once.CompareAndSwap(false, true) {
		close(g.started)
	}
	<-g.release
	return g.r.Read(p)
}

// TestObserve: Observe sees every request once, with its provider and final
// code (two failures spend the budget of 2; a signed push still passes).
func TestObserve(t *testing.T) {
	r := newRig(t, func(o *Options) { o.Rate, o.Burst = 0.001, 2 })
	gh := flavors[0]
	push := gh.push("refs/heads/main", sha)
	other := gh.push("refs/heads/other", sha)
	big := paddedPush(gh, mib+1)
	get := post(gh.path, nil, nil)
	get.Method = http.MethodGet
	for _, req := range []*http.Request{
		post("/nope", nil, nil),
		get,
		post(gh.path, big, gh.headers(big, testSecret)),
		post(gh.path, push, gh.headers(push, "wrong")),
		post(gh.path, []byte("{"), gh.headers([]byte("{"), testSecret)),
		post(gh.path, other, gh.headers(other, testSecret)),
		post(gh.path, push, gh.headers(push, testSecret)),
		post(gh.path, push, gh.headers(push, "wrong")),
		post(gh.path, push, gh.headers(push, "wrong")),
		post(gh.path, push, gh.headers(push, testSecret)),
		post("/hooks/gitlab", nil, nil),
	} {
		r.do(req)
	}
	want := []observation{
		{"unknown", 404}, {"github", 405}, {"github", 413}, {"github", 401}, {"github", 400},
		{"github", 200}, {"github", 202}, {"github", 401}, {"github", 429}, {"github", 202}, {"gitlab", 429},
	}
	if diff := cmp.Diff(want, r.takeObserved()); diff != "" {
		t.Errorf("observed (-want +got):\n%s", diff)
	}
}

// TestLogsHoldNoSecrets: whatever happens, the log never holds the secret,
// a signature or a body.
func TestLogsHoldNoSecrets(t *testing.T) {
	var logs bytes.Buffer
	r := newRig(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.Burst = 100
	})
	body := []byte(`{"ref":"refs/heads/main","after":"` + sha + `","marker":"BODY-MARKER"}`)
	for _, f := range flavors {
		for _, secret := range []string{testSecret, "wrong-secret"} {
			r.do(post(f.path, body, f.headers(body, secret)))
		}
		bad := []byte(`{"marker":"BODY-MARKER"`)
		r.do(post(f.path, bad, f.headers(bad, testSecret)))
	}
	out := logs.String()
	if !strings.Contains(out, "webhook push hint") || !strings.Contains(out, "signature missing or invalid") {
		t.Fatalf("expected hint and signature lines in the log:\n%s", out)
	}
	for _, leak := range []string{testSecret, "wrong-secret", "sha256=", Sign([]byte(testSecret), body)[7:], "BODY-MARKER"} {
		if strings.Contains(out, leak) {
			t.Errorf("log holds %q:\n%s", leak, out)
		}
	}
}

// TestSecretCopied: changing the caller's slice after New changes nothing.
func TestSecretCopied(t *testing.T) {
	secret := []byte(testSecret)
	r := newRig(t, func(o *Options) { o.Secret = secret })
	copy(secret, "XXXX")
	if rec := r.do(post("/hooks/generic", nil, map[string]string{"X-Signature": Sign([]byte(testSecret), nil)})); rec.Code != http.StatusAccepted {
		t.Errorf("code = %d, want 202", rec.Code)
	}
}
