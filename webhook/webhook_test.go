package webhook

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	testSecret = "s3cr3t-for-tests"
	sha        = "8f4e5d3c2b1a09f8e7d6c5b4a39281706f5e4d3c"
	zeroSHA    = "0000000000000000000000000000000000000000"
)

type observation struct {
	Provider string
	Code     int
}

// rig is a handler with recorded hints and observations and a clock the
// test moves.
type rig struct {
	h *handler

	mu       sync.Mutex
	now      time.Time
	hints    []Hint
	observed []observation
}

func newRig(t *testing.T, edit func(*Options)) *rig {
	t.Helper()
	r := &rig{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts := DefaultOptions()
	opts.Secret = []byte(testSecret)
	opts.Notify = func(h Hint) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.hints = append(r.hints, h)
	}
	opts.Observe = func(provider string, code int) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.observed = append(r.observed, observation{provider, code})
	}
	if edit != nil {
		edit(&opts)
	}
	r.h = newHandler(opts, func() time.Time {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.now
	})
	return r
}

func (r *rig) do(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, req)
	return rec
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = r.now.Add(d)
}

func (r *rig) takeHints() []Hint {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hints
	r.hints = nil
	return h
}

func (r *rig) takeObserved() []observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.observed
	r.observed = nil
	return o
}

func post(path string, body []byte, headers map[string]string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "http://tandem.example"+path, bytes.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

// flavor is what differs between providers for the cases they share.
type flavor struct {
	name, path string
	push       func(ref, after string) []byte
	// headers for a push event authenticated with secret.
	headers  func(body []byte, secret string) map[string]string
	delivery string // the delivery header
}

var flavors = []flavor{
	{
		name: "github", path: "/hooks/github",
		push: func(ref, after string) []byte {
			return fmt.Appendf(nil, `{"ref":%q,"before":%q,"after":%q,"repository":{"full_name":"acme/deploy"}}`, ref, zeroSHA, after)
		},
		headers: func(body []byte, secret string) map[string]string {
			return map[string]string{"X-GitHub-Event": "push", "Content-Type": "application/json",
				"X-Hub-Signature-256": Sign([]byte(secret), body)}
		},
		delivery: "X-GitHub-Delivery",
	},
	{
		name: "gitlab", path: "/hooks/gitlab",
		push: func(ref, after string) []byte {
			checkout := fmt.Sprintf("%q", after)
			if after == zeroSHA {
				checkout = "null"
			}
			return fmt.Appendf(nil, `{"object_kind":"push","ref":%q,"before":%q,"after":%q,"checkout_sha":%s}`, ref, zeroSHA, after, checkout)
		},
		headers: func(_ []byte, secret string) map[string]string {
			return map[string]string{"X-Gitlab-Event": "Push Hook", "Content-Type": "application/json", "X-Gitlab-Token": secret}
		},
		delivery: "X-Gitlab-Event-UUID",
	},
	{
		name: "generic", path: "/hooks/generic",
		push: func(ref, after string) []byte {
			return fmt.Appendf(nil, `{"ref":%q,"after":%q}`, ref, after)
		},
		headers: func(body []byte, secret string) map[string]string {
			return map[string]string{"X-Signature": Sign([]byte(secret), body)}
		},
		delivery: "X-Delivery",
	},
}

// TestSharedCases runs the cases every provider must answer alike.
func TestSharedCases(t *testing.T) {
	for _, f := range flavors {
		signed := func(body []byte, edit func(map[string]string)) *http.Request {
			h := f.headers(body, testSecret)
			h[f.delivery] = "delivery-1"
			if edit != nil {
				edit(h)
			}
			return post(f.path, body, h)
		}
		tests := []struct {
			name     string
			req      *http.Request
			wantCode int
			wantHint []Hint
		}{{
			name:     "push to the followed branch is a hint",
			req:      signed(f.push("refs/heads/main", sha), nil),
			wantCode: http.StatusAccepted,
			wantHint: []Hint{{Provider: f.name, Ref: "refs/heads/main", After: sha, Delivery: "delivery-1"}},
		}, {
			name:     "push to another branch is acknowledged, no hint",
			req:      signed(f.push("refs/heads/feature", sha), nil),
			wantCode: http.StatusOK,
		}, {
			name:     "push of a tag named like the branch is no hint",
			req:      signed(f.push("refs/tags/main", sha), nil),
			wantCode: http.StatusOK,
		}, {
			name:     "deleting the branch is a hint without a commit",
			req:      signed(f.push("refs/heads/main", zeroSHA), nil),
			wantCode: http.StatusAccepted,
			wantHint: []Hint{{Provider: f.name, Ref: "refs/heads/main", Delivery: "delivery-1"}},
		}, {
			name:     "a delivery ID that is not a plain token is dropped",
			req:      signed(f.push("refs/heads/main", sha), func(h map[string]string) { h[f.delivery] = "x\ny=1" }),
			wantCode: http.StatusAccepted,
			wantHint: []Hint{{Provider: f.name, Ref: "refs/heads/main", After: sha}},
		}, {
			name: "no signature or token is 401",
			req: signed(f.push("refs/heads/main", sha), func(h map[string]string) {
				delete(h, "X-Hub-Signature-256")
				delete(h, "X-Gitlab-Token")
				delete(h, "X-Signature")
			}),
			wantCode: http.StatusUnauthorized,
		}, {
			name:     "signed with another secret is 401",
			req:      post(f.path, f.push("refs/heads/main", sha), f.headers(f.push("refs/heads/main", sha), "not-"+testSecret)),
			wantCode: http.StatusUnauthorized,
		}, {
			name:     "signed with the secret's prefix is 401",
			req:      post(f.path, f.push("refs/heads/main", sha), f.headers(f.push("refs/heads/main", sha), testSecret[:4])),
			wantCode: http.StatusUnauthorized,
		}, {
			name:     "signed malformed JSON is 400",
			req:      signed([]byte(`{"ref": "refs/heads/main"`), nil),
			wantCode: http.StatusBadRequest,
		}, {
			name:     "signed JSON with a ref that is not a string is 400",
			req:      signed([]byte(`{"ref": 5}`), nil),
			wantCode: http.StatusBadRequest,
		}, {
			name: "a forwarded-for header changes nothing",
			req: signed(f.push("refs/heads/main", sha), func(h map[string]string) {
				h["X-Forwarded-For"] = "203.0.113.9"
			}),
			wantCode: http.StatusAccepted,
			wantHint: []Hint{{Provider: f.name, Ref: "refs/heads/main", After: sha, Delivery: "delivery-1"}},
		}}
		for _, tt := range tests {
			t.Run(f.name+"/"+tt.name, func(t *testing.T) {
				r := newRig(t, nil)
				rec := r.do(tt.req)
				if rec.Code != tt.wantCode {
					t.Errorf("code = %d, want %d (body %q)", rec.Code, tt.wantCode, rec.Body.String())
				}
				if diff := cmp.Diff(tt.wantHint, r.takeHints()); diff != "" {
					t.Errorf("hints (-want +got):\n%s", diff)
				}
				checkReply(t, rec)
				if diff := cmp.Diff([]observation{{f.name, tt.wantCode}}, r.takeObserved()); diff != "" {
					t.Errorf("observed (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// checkReply: answers are short plain text and never echo the request.
func checkReply(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	body := rec.Body.String()
	if len(body) > 64 {
		t.Errorf("reply is %d bytes: %q", len(body), body)
	}
	for _, leak := range []string{"refs/", sha, testSecret, "delivery-1", "sha256=", "{"} {
		if strings.Contains(body, leak) {
			t.Errorf("reply %q echoes %q", body, leak)
		}
	}
}

func TestGitHub(t *testing.T) {
	push := flavors[0].push("refs/heads/main", sha)
	form := []byte("payload=" + url.QueryEscape(string(push)))
	sig := Sign([]byte(testSecret), push)
	sha1Sig := "sha1=" + strings.Repeat("ab", 20)
	tests := []struct {
		name     string
		body     []byte
		headers  map[string]string
		wantCode int
		wantHint []Hint
	}{{
		name:     "signed ping is 200",
		body:     []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`),
		headers:  map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": Sign([]byte(testSecret), []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`))},
		wantCode: http.StatusOK,
	}, {
		name:     "unsigned ping is 401",
		body:     []byte(`{"zen":"x"}`),
		headers:  map[string]string{"X-GitHub-Event": "ping"},
		wantCode: http.StatusUnauthorized,
	}, {
		name:     "SHA-1 signature only is 401",
		body:     push,
		headers:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature": sha1Sig},
		wantCode: http.StatusUnauthorized,
	}, {
		name:     "SHA-1 header beside a valid SHA-256 one is fine",
		body:     push,
		headers:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature": sha1Sig, "X-Hub-Signature-256": sig},
		wantCode: http.StatusAccepted,
		wantHint: []Hint{{Provider: "github", Ref: "refs/heads/main", After: sha}},
	}, {
		name:     "the SHA-256 signature in the SHA-1 header is 401",
		body:     push,
		headers:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature": sig},
		wantCode: http.StatusUnauthorized,
	}, {
		name:     "signature without its sha256= prefix is 401",
		body:     push,
		headers:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": strings.TrimPrefix(sig, "sha256=")},
		wantCode: http.StatusUnauthorized,
	}, {
		name:     "truncated signature is 401",
		body:     push,
		headers:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sig[:len(sig)-2]},
		wantCode: http.StatusUnauthorized,
	}, {
		name:     "signature of another body is 401",
		body:     push,
		headers:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": Sign([]byte(testSecret), append(push, ' '))},
		wantCode: http.StatusUnauthorized,
	}, {
		name:     "another event is acknowledged, no hint",
		body:     push,
		headers:  map[string]string{"X-GitHub-Event": "issues", "X-Hub-Signature-256": sig},
		wantCode: http.StatusOK,
	}, {
		name:     "missing event header is 400",
		body:     push,
		headers:  map[string]string{"X-Hub-Signature-256": sig},
		wantCode: http.StatusBadRequest,
	}, {
		name:     "a form-encoded push is a hint",
		body:     form,
		headers:  map[string]string{"X-GitHub-Event": "push", "Content-Type": "application/x-www-form-urlencoded", "X-Hub-Signature-256": Sign([]byte(testSecret), form)},
		wantCode: http.StatusAccepted,
		wantHint: []Hint{{Provider: "github", Ref: "refs/heads/main", After: sha}},
	}, {
		name:     "a form without payload is 400",
		body:     []byte("a=b"),
		headers:  map[string]string{"X-GitHub-Event": "push", "Content-Type": "application/x-www-form-urlencoded", "X-Hub-Signature-256": Sign([]byte(testSecret), []byte("a=b"))},
		wantCode: http.StatusBadRequest,
	}, {
		name:     "a ping whose body is not JSON is 400",
		body:     []byte("hello"),
		headers:  map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": Sign([]byte(testSecret), []byte("hello"))},
		wantCode: http.StatusBadRequest,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, nil)
			rec := r.do(post("/hooks/github", tt.body, tt.headers))
			if rec.Code != tt.wantCode {
				t.Errorf("code = %d, want %d (body %q)", rec.Code, tt.wantCode, rec.Body.String())
			}
			if diff := cmp.Diff(tt.wantHint, r.takeHints()); diff != "" {
				t.Errorf("hints (-want +got):\n%s", diff)
			}
			checkReply(t, rec)
		})
	}
}

func TestGitLab(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		headers  map[string]string
		wantCode int
		wantHint []Hint
	}{{
		name:     "tag push hook is acknowledged, no hint",
		body:     `{"object_kind":"tag_push","ref":"refs/tags/v1","after":"` + sha + `"}`,
		headers:  map[string]string{"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": testSecret},
		wantCode: http.StatusOK,
	}, {
		name:     "merge request hook is acknowledged, no hint",
		body:     `{"object_kind":"merge_request"}`,
		headers:  map[string]string{"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": testSecret},
		wantCode: http.StatusOK,
	}, {
		name:     "checkout_sha wins over after",
		body:     `{"ref":"refs/heads/main","after":"1111111111111111111111111111111111111111","checkout_sha":"` + sha + `"}`,
		headers:  map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": testSecret, "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e"},
		wantCode: http.StatusAccepted,
		wantHint: []Hint{{Provider: "gitlab", Ref: "refs/heads/main", After: sha, Delivery: "13792a34-cac6-4fda-95a8-c58e00a3954e"}},
	}, {
		name:     "token with the secret as prefix is 401",
		body:     `{"ref":"refs/heads/main"}`,
		headers:  map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": testSecret + "x"},
		wantCode: http.StatusUnauthorized,
	}, {
		name:     "empty token is 401",
		body:     `{"ref":"refs/heads/main"}`,
		headers:  map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": ""},
		wantCode: http.StatusUnauthorized,
	}, {
		name:     "the token as an HMAC signature is 401",
		body:     `{"ref":"refs/heads/main"}`,
		headers:  map[string]string{"X-Gitlab-Event": "Push Hook", "X-Signature": Sign([]byte(testSecret), []byte(`{"ref":"refs/heads/main"}`))},
		wantCode: http.StatusUnauthorized,
	}, {
		name:     "missing event header is 400",
		body:     `{"ref":"refs/heads/main"}`,
		headers:  map[string]string{"X-Gitlab-Token": testSecret},
		wantCode: http.StatusBadRequest,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, nil)
			rec := r.do(post("/hooks/gitlab", []byte(tt.body), tt.headers))
			if rec.Code != tt.wantCode {
				t.Errorf("code = %d, want %d (body %q)", rec.Code, tt.wantCode, rec.Body.String())
			}
			if diff := cmp.Diff(tt.wantHint, r.takeHints()); diff != "" {
				t.Errorf("hints (-want +got):\n%s", diff)
			}
			checkReply(t, rec)
		})
	}
}

func TestGeneric(t *testing.T) {
	signed := func(body string) map[string]string {
		return map[string]string{"X-Signature": Sign([]byte(testSecret), []byte(body))}
	}
	mainHint := []Hint{{Provider: "generic", Ref: "refs/heads/main"}}
	tests := []struct {
		name     string
		branch   string
		body     string
		headers  map[string]string
		wantCode int
		wantHint []Hint
	}{
		{name: "empty body is a hint for the branch", body: "", headers: signed(""), wantCode: http.StatusAccepted, wantHint: mainHint},
		{name: "blank body is a hint for the branch", body: " \n", headers: signed(" \n"), wantCode: http.StatusAccepted, wantHint: mainHint},
		{name: "JSON null is a hint for the branch", body: "null", headers: signed("null"), wantCode: http.StatusAccepted, wantHint: mainHint},
		{name: "object without ref is a hint for the branch", body: `{"after":"` + sha + `"}`, headers: signed(`{"after":"` + sha + `"}`),
			wantCode: http.StatusAccepted, wantHint: []Hint{{Provider: "generic", Ref: "refs/heads/main", After: sha}}},
		{name: "the branch's short name is not its ref", body: `{"ref":"main"}`, headers: signed(`{"ref":"main"}`), wantCode: http.StatusOK},
		{name: "another followed branch", branch: "release", body: `{"ref":"refs/heads/release"}`, headers: signed(`{"ref":"refs/heads/release"}`),
			wantCode: http.StatusAccepted, wantHint: []Hint{{Provider: "generic", Ref: "refs/heads/release"}}},
		{name: "main when release is followed", branch: "release", body: "", headers: signed(""),
			wantCode: http.StatusAccepted, wantHint: []Hint{{Provider: "generic", Ref: "refs/heads/release"}}},
		{name: "a JSON array is 400", body: `[]`, headers: signed(`[]`), wantCode: http.StatusBadRequest},
		{name: "unsigned empty body is 401", body: "", headers: nil, wantCode: http.StatusUnauthorized},
		{name: "GitHub's header on the generic path is 401", body: "", headers: map[string]string{"X-Hub-Signature-256": Sign([]byte(testSecret), nil)}, wantCode: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, func(o *Options) {
				if tt.branch != "" {
					o.Branch = tt.branch
				}
			})
			rec := r.do(post("/hooks/generic", []byte(tt.body), tt.headers))
			if rec.Code != tt.wantCode {
				t.Errorf("code = %d, want %d (body %q)", rec.Code, tt.wantCode, rec.Body.String())
			}
			if diff := cmp.Diff(tt.wantHint, r.takeHints()); diff != "" {
				t.Errorf("hints (-want +got):\n%s", diff)
			}
			checkReply(t, rec)
		})
	}
}

// TestAnyBranch: an empty Branch takes a push to any branch, never a tag.
func TestAnyBranch(t *testing.T) {
	r := newRig(t, func(o *Options) { o.Branch = "" })
	for _, tt := range []struct {
		ref  string
		want int
	}{{"refs/heads/feature", http.StatusAccepted}, {"refs/tags/v1", http.StatusOK}} {
		body := flavors[0].push(tt.ref, sha)
		if rec := r.do(post("/hooks/github", body, flavors[0].headers(body, testSecret))); rec.Code != tt.want {
			t.Errorf("%s: code = %d, want %d", tt.ref, rec.Code, tt.want)
		}
	}
	if rec := r.do(post("/hooks/generic", nil, map[string]string{"X-Signature": Sign([]byte(testSecret), nil)})); rec.Code != http.StatusAccepted {
		t.Errorf("generic without ref: code = %d", rec.Code)
	}
	want := []Hint{{Provider: "github", Ref: "refs/heads/feature", After: sha}, {Provider: "generic"}}
	if diff := cmp.Diff(want, r.takeHints()); diff != "" {
		t.Errorf("hints (-want +got):\n%s", diff)
	}
}

func TestSign(t *testing.T) {
	// GitHub's documented example: secret "It's a Secret to Everybody",
	// payload "Hello, World!".
	got := Sign([]byte("It's a Secret to Everybody"), []byte("Hello, World!"))
	want := "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}
