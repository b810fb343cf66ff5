package webhook

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzGitHub: whatever the body and headers, the handler does not panic,
// answers a known status, notifies only for a body signed with the secret,
// and never refuses a signed body for rate (the budget here is one failure,
// so the fuzzer's unsigned inputs do spend it).
func FuzzGitHub(f *testing.F) {
	push := []byte(`{"ref":"refs/heads/main","after":"` + sha + `"}`)
	f.Add(push, "push", Sign([]byte(testSecret), push), "application/json")
	f.Add(push, "push", Sign([]byte("guess"), push), "application/json")
	f.Add(push, "push", "", "")
	f.Add([]byte(`{"zen":"x"}`), "ping", "sha256=", "application/json")
	f.Add([]byte("payload=%7B%22ref%22%3A1%7D"), "push", "sha256=zz", "application/x-www-form-urlencoded")
	f.Add([]byte{}, "", "sha1=0000", "text/plain; charset=\"")

	known := map[int]bool{200: true, 202: true, 400: true, 401: true, 413: true, 429: true}
	f.Fuzz(func(t *testing.T, body []byte, event, signature, contentType string) {
		notified := 0
		opts := DefaultOptions()
		opts.Secret = []byte(testSecret)
		opts.MaxBodyBytes = 4096
		opts.Burst = 1
		opts.Notify = func(Hint) { notified++ }
		h := New(opts)
		spend := httptest.NewRequest(http.MethodPost, "/hooks/github", nil)
		h.ServeHTTP(httptest.NewRecorder(), spend) // the source's only failure

		req := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", event)
		req.Header.Set("X-Hub-Signature-256", signature)
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if !known[rec.Code] {
			t.Errorf("status %d", rec.Code)
		}
		signed := verifySignature([]byte(testSecret), body, signature)
		if signed && rec.Code == http.StatusTooManyRequests {
			t.Errorf("signed body refused for rate")
		}
		if notified > 0 && !signed {
			t.Errorf("notified for an unsigned body (status %d)", rec.Code)
		}
		if notified > 1 {
			t.Errorf("notified %d times", notified)
		}
		if rec.Body.Len() > 64 {
			t.Errorf("reply of %d bytes", rec.Body.Len())
		}
	})
}
