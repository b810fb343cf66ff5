package webhook

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// From a security review: behind an Ingress every request has the proxy's
// RemoteAddr. Unsigned garbage from the internet must not drain a budget that
// GitHub's signed push then needs: the budget is charged only for failures,
// and a correctly signed request is never refused for rate.
func TestUnsignedFloodBehindProxyDoesNotStarveSignedPush(t *testing.T) {
	secret := []byte("s3cret")
	hints := 0
	h := New(Options{Secret: secret, Branch: "main", Notify: func(Hint) { hints++ }})
	codes := map[int]int{}
	for range 20 {
		r := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader([]byte("{}")))
		r.RemoteAddr = "10.0.0.7:5555" // the ingress pod
		r.Header.Set("X-GitHub-Event", "push")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		codes[w.Code]++
	}
	// The default failure budget is a burst of 10: the flood is throttled.
	if codes[http.StatusUnauthorized] != 10 || codes[http.StatusTooManyRequests] != 10 {
		t.Errorf("unsigned flood answered %v; want 10 × 401 then 10 × 429", codes)
	}
	body := []byte(`{"ref":"refs/heads/main","after":"0123456789012345678901234567890123456789"}`)
	r := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
	r.RemoteAddr = "10.0.0.7:5556"
	r.Header.Set("X-GitHub-Event", "push")
	r.Header.Set("X-Hub-Signature-256", Sign(secret, body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusAccepted || hints != 1 {
		t.Errorf("signed push answered %d (%d hints) after 20 unsigned requests from the same proxy address; want 202 and 1 hint", w.Code, hints)
	}
}

// eventReader reports its first Read on events, then reads r.
type eventReader struct {
	r      io.Reader
	events chan<- int
	first  bool
}

const reading = -1 // event: a handler started reading the body

func (e *eventReader) Read(p []byte) (int, error) {
	if !e.first {
		e.first = true
		e.events <- reading
	}
	return e.r.Read(p)
}

// From a security review: one client opening MaxInFlight slow bodies must
// not make every other source's delivery 503. It gets MaxInFlightPerSource
// slots (default 2); the rest of its requests are refused without touching
// the shared ones, and GitHub's push is served.
func TestSlowBodiesFromOneSourceDoNotBlockOtherSources(t *testing.T) {
	secret := []byte("s3cret")
	h := newHandler(Options{Secret: secret, Branch: "main"}, time.Now)
	const slow = 16 // the default MaxInFlight
	events := make(chan int, 2*slow)
	var writers []*io.PipeWriter
	for range slow {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		r := httptest.NewRequest(http.MethodPost, "/hooks/github", &eventReader{r: pr, events: events})
		r.RemoteAddr = "203.0.113.9:1234"
		go func() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			events <- w.Code
		}()
	}
	// Every slow request is now either reading its body or answered.
	counts := map[int]int{}
	for range slow {
		counts[<-events]++
	}
	if counts[reading] != 2 || counts[http.StatusServiceUnavailable] != slow-2 {
		t.Errorf("one source's %d slow bodies: %d reading, answers %v; want 2 reading and %d × 503", slow, counts[reading], counts, slow-2)
	}
	body := []byte(`{"ref":"refs/heads/main","after":"0123456789012345678901234567890123456789"}`)
	r := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
	r.RemoteAddr = "140.82.115.1:443" // GitHub
	r.Header.Set("X-GitHub-Event", "push")
	r.Header.Set("X-Hub-Signature-256", Sign(secret, body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	for _, pw := range writers {
		pw.Close()
	}
	if w.Code != http.StatusAccepted {
		t.Errorf("GitHub's signed push answered %d while one other source holds slow bodies; want 202", w.Code)
	}
	for range counts[reading] {
		if code := <-events; code != http.StatusUnauthorized {
			t.Errorf("slow unsigned body, once closed: %d, want 401", code)
		}
	}
	if src, all := h.slots.held(netip.MustParseAddr("203.0.113.9")); src != 0 || all != 0 {
		t.Errorf("after all requests: source holds %d slots, %d held in all; want 0, 0", src, all)
	}
	if n := len(h.slots.bySrc); n != 0 {
		t.Errorf("%d sources still tracked for slots, want 0", n)
	}
}

// TestInFlightPerSource: a source at MaxInFlightPerSource gets 503 with
// Retry-After while another source is served; its slot frees when its
// request ends.
func TestInFlightPerSource(t *testing.T) {
	r := newRig(t, func(o *Options) { o.MaxInFlightPerSource = 1 })
	body := flavors[2].push("refs/heads/main", sha)
	headers := flavors[2].headers(body, testSecret)
	from := func(addr string) *http.Request {
		req := post("/hooks/generic", body, headers)
		req.RemoteAddr = addr
		return req
	}
	started, release := make(chan struct{}), make(chan struct{})
	slow := from("192.0.2.1:1000")
	slow.Body = io.NopCloser(&gatedReader{r: bytes.NewReader(body), started: started, release: release})
	slow.ContentLength = -1
	done := make(chan int)
	go func() { done <- r.do(slow).Code }()
	<-started

	if rec := r.do(from("192.0.2.1:1001")); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("same source while its slot is held: %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := r.do(from("[2001:db8:1:2::7]:1000")); rec.Code != http.StatusAccepted {
		t.Errorf("another source: %d, want 202", rec.Code)
	}
	if rec := r.do(from("[2001:db8:1:2::8]:1000")); rec.Code != http.StatusAccepted {
		t.Errorf("another source, again (its slot was released): %d, want 202", rec.Code)
	}
	close(release)
	if code := <-done; code != http.StatusAccepted {
		t.Errorf("slow request: %d, want 202", code)
	}
	if rec := r.do(from("192.0.2.1:1002")); rec.Code != http.StatusAccepted {
		t.Errorf("same source after its slot freed: %d, want 202", rec.Code)
	}
}

// TestSlowBodyTimesOut drives a real server: a client that sends headers and
// part of its body, then stalls, gets 408 after BodyReadTimeout (not the
// server's much longer ReadTimeout), and the only slot is free again.
func TestSlowBodyTimesOut(t *testing.T) {
	if testing.Short() {
		t.Skip("real server with a timeout")
	}
	r := newRig(t, func(o *Options) { o.MaxInFlight, o.BodyReadTimeout = 1, 200*time.Millisecond })
	srv := httptest.NewUnstartedServer(r.h)
	srv.Config.ReadTimeout = time.Hour
	srv.Start()
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half of a 100-byte body, then nothing.
	if _, err := io.WriteString(conn, "POST /hooks/generic HTTP/1.1\r\nHost: x\r\nX-Signature: sha256="+
		strings.Repeat("0", 64)+"\r\nContent-Length: 100\r\n\r\n"+strings.Repeat(" ", 50)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(time.Minute)) // a hang fails the test, not the suite
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("stalled body: no response: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("stalled body: %d, want 408", resp.StatusCode)
	}

	body := flavors[2].push("refs/heads/main", sha)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/generic", bytes.NewReader(body))
	req.Header.Set("X-Signature", Sign([]byte(testSecret), body))
	got, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got.Body.Close()
	if got.StatusCode != http.StatusAccepted {
		t.Errorf("push after the stalled body timed out: %d, want 202", got.StatusCode)
	}
	want := []observation{{"generic", http.StatusRequestTimeout}, {"generic", http.StatusAccepted}}
	if o := r.takeObserved(); len(o) != 2 || o[0] != want[0] || o[1] != want[1] {
		t.Errorf("observed %v, want %v", o, want)
	}
}
