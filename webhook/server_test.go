package webhook

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// lazyBody yields n bytes without holding them, and counts what was taken.
type lazyBody struct {
	prefix []byte
	n      int64
	sent   atomic.Int64
}

func (l *lazyBody) Read(p []byte) (int, error) {
	sent := l.sent.Load()
	if sent >= l.n {
		return 0, io.EOF
	}
	if rest := l.n - sent; int64(len(p)) > rest {
		p = p[:rest]
	}
	for i := range p {
		if off := sent + int64(i); off < int64(len(l.prefix)) {
			p[i] = l.prefix[off]
		} else {
			p[i] = ' '
		}
	}
	l.sent.Add(int64(len(p)))
	return len(p), nil
}

// TestRealServer posts through a real net/http server and client: a large
// chunked body is refused with 413 after the handler read at most
// MaxBodyBytes+1 bytes of it; the same server then still takes a signed
// chunked push, and a too-large Content-Length is refused unread.
func TestRealServer(t *testing.T) {
	r := newRig(t, nil)
	var last atomic.Pointer[countingReader] // the last request's body, as the handler saw it
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		cr := &countingReader{r: req.Body}
		last.Store(cr)
		req.Body = struct {
			io.Reader
			io.Closer
		}{cr, req.Body}
		r.h.ServeHTTP(w, req)
	}))
	defer srv.Close()
	push := flavors[2].push("refs/heads/main", sha)

	send := func(body io.Reader, length int64, sig string) (int, error) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/hooks/generic", body)
		if err != nil {
			return 0, err
		}
		req.ContentLength = length // -1: chunked
		req.Header.Set("X-Signature", sig)
		resp, err := srv.Client().Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}

	// 64 MiB chunked, signed or not: size is decided first.
	big := &lazyBody{prefix: push, n: 64 << 20}
	code, err := send(big, -1, "sha256=00")
	if err != nil {
		t.Fatalf("large chunked post: %v", err)
	}
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("large chunked post: code = %d, want 413", code)
	}
	if got := last.Load().n.Load(); got > mib+1 {
		t.Errorf("handler pulled %d bytes of a 64 MiB body, limit+1 is %d", got, mib+1)
	}
	if got := big.sent.Load(); got >= big.n {
		t.Logf("client sent the whole body before the server closed (%d bytes)", got)
	}

	// A signed push of just under the limit, chunked, is a hint.
	body := paddedPush(flavors[2], mib)
	code, err = send(io.MultiReader(bytes.NewReader(body)), -1, Sign([]byte(testSecret), body))
	if err != nil || code != http.StatusAccepted {
		t.Errorf("signed chunked push: code %d, err %v; want 202", code, err)
	}

	// A declared length over the limit is refused before reading.
	huge := &lazyBody{prefix: push, n: 2 * mib}
	code, err = send(huge, 2*mib, "sha256=00")
	if err != nil || code != http.StatusRequestEntityTooLarge {
		t.Errorf("large Content-Length post: code %d, err %v; want 413", code, err)
	}
	if got := last.Load().n.Load(); got != 0 {
		t.Errorf("handler pulled %d bytes of a body whose Content-Length was over the limit", got)
	}

	if diff := len(r.takeHints()); diff != 1 {
		t.Errorf("%d hints, want 1", diff)
	}
}
