package comment

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Issue 11 item 2: the sticky comment belongs to tandem. These tests run
// Upsert against the recording fakes of GitHub and GitLab (github_test.go,
// gitlab_test.go) and attack it the way a pull request's author or a
// misbehaving API would.

// waits records the waits of a retrying client instead of sleeping them.
type waits struct {
	mu  sync.Mutex
	got []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, d)
	return ctx.Err()
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.got...)
}

// countRequests counts the recorded requests with this method and path prefix.
func countRequests(log []recorded, method, pathPrefix string) int {
	n := 0
	for _, r := range log {
		if r.Method == method && strings.HasPrefix(r.URI, pathPrefix) {
			n++
		}
	}
	return n
}

func bodiesOf(cs []ghComment) map[int64]string {
	out := map[int64]string{}
	for _, c := range cs {
		out[c.ID] = c.User.Login + ": " + c.Body
	}
	return out
}

// TestGitHubPlantedMarkerIsNotEdited: anyone can write a comment holding
// tandem's marker ("no changes", say). Only comments by the token's own
// identity are tandem's; a planted one is never edited.
func TestGitHubPlantedMarkerIsNotEdited(t *testing.T) {
	const planted = marker + "\n### tandem plan\n**No changes**"
	tests := []struct {
		name string
		// app makes the token an App installation token (Actions' GITHUB_TOKEN):
		// GET /user answers 403 and the identity comes from GraphQL's viewer.
		app    bool
		author string
		ours   bool // a comment of ours follows the planted one
		want   map[int64]string
		// wantWho are the identity requests expected before the list.
		wantWho []string
	}{
		{
			name: "user token, only a planted comment", want: map[int64]string{1001: "octocat: " + planted, 1002: "tandem-bot: " + marker + "\nreal plan"},
			wantWho: []string{"GET /user"},
		},
		{
			name: "user token, planted before ours", ours: true, want: map[int64]string{1001: "octocat: " + planted, 1002: "tandem-bot: " + marker + "\nreal plan"},
			wantWho: []string{"GET /user"},
		},
		{
			name: "installation token", app: true, ours: true, want: map[int64]string{1001: "octocat: " + planted, 1002: "github-actions[bot]: " + marker + "\nreal plan"},
			wantWho: []string{"GET /user", "POST /graphql"},
		},
		{
			name: "explicit author", author: "TANDEM-bot", ours: true, want: map[int64]string{1001: "octocat: " + planted, 1002: "tandem-bot: " + marker + "\nreal plan"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newFakeGitHub(t, "", "tok")
			me := bot
			if tt.app {
				me = ghUser{Login: "github-actions[bot]", ID: 41898282}
				f.users["tok"] = me
				f.appTokens["tok"] = true
			}
			f.seed("acme/shop#7", planted)
			if tt.ours {
				f.seedAs("acme/shop#7", me, marker+"\nold plan")
			}
			g := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "acme/shop", HTTPClient: srv.Client(), Author: tt.author}
			res, err := g.Upsert(context.Background(), 7, marker+"\nreal plan", marker)
			if err != nil {
				t.Fatal(err)
			}
			if res.ID != 1002 {
				t.Errorf("Upsert wrote comment %d, want 1002 (ours)", res.ID)
			}
			f.mu.Lock()
			got := bodiesOf(f.comments["acme/shop#7"])
			f.mu.Unlock()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("comments (-want +got):\n%s", diff)
			}
			reqs := f.takeRequests()
			if diff := cmp.Diff(tt.wantWho, append([]string(nil), reqs[:len(reqs)-2]...)); diff != "" {
				t.Errorf("identity requests (-want +got):\n%s", diff)
			}
			for _, r := range reqs {
				if strings.Contains(r, "/comments/1001") {
					t.Errorf("a request touched the planted comment: %s", r)
				}
			}
		})
	}
}

// TestGitLabPlantedMarkerIsNotEdited is the same attack on a merge request.
func TestGitLabPlantedMarkerIsNotEdited(t *testing.T) {
	for _, ours := range []bool{false, true} {
		t.Run(fmt.Sprintf("ours=%v", ours), func(t *testing.T) {
			f, srv := newFakeGitLab(t, "", "glpat-x")
			planted := marker + "\n**No changes**"
			me := glBot
			mallory := glHuman
			f.seed("42!3", glNote{Body: planted, Author: &mallory})
			if ours {
				f.seed("42!3", glNote{Body: marker + "\nold plan", Author: &me})
			}
			res, err := GitLab{BaseURL: srv.URL, Token: "glpat-x", Project: "42", HTTPClient: srv.Client()}.Upsert(context.Background(), 3, marker+"\nreal plan", marker)
			if err != nil {
				t.Fatal(err)
			}
			if res.ID != 502 {
				t.Errorf("Upsert wrote note %d, want 502 (ours)", res.ID)
			}
			f.mu.Lock()
			notes := f.notes["42!3"]
			f.mu.Unlock()
			got := map[int64]string{}
			for _, n := range notes {
				got[n.ID] = n.Author.Username + ": " + n.Body
			}
			want := map[int64]string{501: "mallory: " + planted, 502: glBot.Username + ": " + marker + "\nreal plan"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("notes (-want +got):\n%s", diff)
			}
			if reqs := f.takeRequests(); reqs[0] != "GET /api/v4/user" {
				t.Errorf("first request %q, want GET /api/v4/user (whose notes are ours)", reqs[0])
			}
		})
	}
}

// TestDuplicatesOfOursAreRemoved: two runs that raced each created a comment;
// the next run keeps the first up to date and deletes the other, so no stale
// plan stays on the page. Comments by others are left alone.
func TestDuplicatesOfOursAreRemoved(t *testing.T) {
	t.Run("github", func(t *testing.T) {
		f, srv := newFakeGitHub(t, "", "tok")
		f.seedAs("acme/shop#5", bot, marker+"\nrace one")
		f.seed("acme/shop#5", marker+"\nplanted")
		f.seedAs("acme/shop#5", bot, marker+"\nrace two")
		res, err := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "acme/shop", HTTPClient: srv.Client()}.Upsert(context.Background(), 5, marker+"\nnow", marker)
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		got := bodiesOf(f.comments["acme/shop#5"])
		f.mu.Unlock()
		want := map[int64]string{1001: "tandem-bot: " + marker + "\nnow", 1002: "octocat: " + marker + "\nplanted"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("comments (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]int64{1003}, res.Removed); diff != "" {
			t.Errorf("Result.Removed (-want +got):\n%s", diff)
		}
	})
	t.Run("gitlab", func(t *testing.T) {
		f, srv := newFakeGitLab(t, "", "glpat-x")
		me, mallory := glBot, glHuman
		f.seed("42!3", glNote{Body: marker + "\nrace one", Author: &me}, glNote{Body: marker + "\nplanted", Author: &mallory}, glNote{Body: marker + "\nrace two", Author: &me})
		if _, err := (GitLab{BaseURL: srv.URL, Token: "glpat-x", Project: "42", HTTPClient: srv.Client()}).Upsert(context.Background(), 3, marker+"\nnow", marker); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{marker + "\nnow", marker + "\nplanted"}, f.withMarkerBodies("42!3")); diff != "" {
			t.Errorf("notes holding the marker (-want +got):\n%s", diff)
		}
	})
}

// TestRedirectToAnotherHostGetsNoToken: an API (or a proxy in front of it)
// that redirects to another host must not receive the token there. Go's
// client forwards custom headers such as GitLab's PRIVATE-TOKEN to any host,
// and Authorization to the same host name on another port.
func TestRedirectToAnotherHostGetsNoToken(t *testing.T) {
	const secret = "s3cr3t-redirect-token"
	var mu sync.Mutex
	var leaked []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		for k, v := range r.Header {
			if strings.Contains(strings.Join(v, " "), secret) {
				leaked = append(leaked, r.Method+" "+r.URL.Path+" "+k)
			}
		}
		writeJSON(w, http.StatusOK, []any{})
	}))
	defer other.Close()

	upserts := map[string]func() error{
		"github": func() error {
			f, srv := newFakeGitHub(t, "", secret)
			f.inject(fault{method: "GET", path: "/repos/acme/shop/issues/7/comments", status: http.StatusTemporaryRedirect,
				header: map[string]string{"Location": other.URL + "/repos/acme/shop/issues/7/comments"}})
			_, err := GitHub{BaseURL: srv.URL, Token: secret, Repo: "acme/shop", HTTPClient: srv.Client()}.Upsert(context.Background(), 7, marker, marker)
			return err
		},
		"gitlab": func() error {
			f, srv := newFakeGitLab(t, "", secret)
			f.inject(fault{method: "GET", path: "/api/v4/projects/42/merge_requests/3/notes", status: http.StatusMovedPermanently,
				header: map[string]string{"Location": other.URL + "/api/v4/projects/42/merge_requests/3/notes"}})
			_, err := GitLab{BaseURL: srv.URL, Token: secret, Project: "42", HTTPClient: srv.Client()}.Upsert(context.Background(), 3, marker, marker)
			return err
		},
	}
	for name, upsert := range upserts {
		t.Run(name, func(t *testing.T) {
			err := upsert()
			mu.Lock()
			got := append([]string(nil), leaked...)
			leaked = nil
			mu.Unlock()
			if len(got) > 0 {
				t.Errorf("the token reached another host: %q", got)
			}
			if err == nil || !strings.Contains(err.Error(), "refusing to follow a redirect to "+other.URL) {
				t.Errorf("Upsert error = %v, want a refusal naming the other host", err)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("error holds the token: %v", err)
			}
		})
	}
}

// TestSameHostRedirectIsFollowed: GitHub answers a renamed repository with a
// redirect on its own host; that one is followed, with the token.
func TestSameHostRedirectIsFollowed(t *testing.T) {
	f, srv := newFakeGitHub(t, "", "tok")
	f.inject(fault{method: "GET", path: "/repos/old/name/issues/7/comments", status: http.StatusMovedPermanently,
		header: map[string]string{"Location": srv.URL + "/repos/acme/shop/issues/7/comments?per_page=100"}})
	f.seedAs("acme/shop#7", bot, marker+"\nold")
	// The edit goes to the old name too; GitHub redirects it (307 keeps the method and body).
	f.inject(fault{method: "PATCH", path: "/repos/old/name/issues/comments/1001", status: http.StatusTemporaryRedirect,
		header: map[string]string{"Location": srv.URL + "/repos/acme/shop/issues/comments/1001"}})
	res, err := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "old/name", HTTPClient: srv.Client()}.Upsert(context.Background(), 7, marker+"\nnew", marker)
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != ActionUpdated || res.ID != 1001 {
		t.Errorf("Upsert = %+v, want comment 1001 updated", res)
	}
	if diff := cmp.Diff([]string{marker + "\nnew"}, f.withMarkerBodies("acme/shop#7")); diff != "" {
		t.Errorf("comments holding the marker (-want +got):\n%s", diff)
	}
}

// TestRetriesHonourTheAPI: 429 and 5xx are tried again, after the wait the API
// asks for (Retry-After, a rate limit's reset) or a doubling backoff; then
// the run succeeds.
func TestRetriesHonourTheAPI(t *testing.T) {
	list := "/repos/acme/shop/issues/7/comments"
	tests := []struct {
		name      string
		faults    []fault
		wantWaits []time.Duration
	}{
		{name: "429 with Retry-After", wantWaits: []time.Duration{3 * time.Second},
			faults: []fault{{method: "GET", path: list, status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "3"}, body: `{"message":"API rate limit exceeded"}`}}},
		{name: "secondary rate limit: 403 with Retry-After", wantWaits: []time.Duration{20 * time.Second},
			faults: []fault{{method: "GET", path: list, status: http.StatusForbidden, header: map[string]string{"Retry-After": "20"}, body: `{"message":"You have exceeded a secondary rate limit"}`}}},
		{name: "503 then 502, backoff", wantWaits: []time.Duration{time.Second, 2 * time.Second},
			faults: []fault{{method: "GET", path: list, status: http.StatusServiceUnavailable}, {method: "GET", path: list, status: http.StatusBadGateway}}},
		{name: "edit answered 500", wantWaits: []time.Duration{time.Second},
			faults: []fault{{method: "PATCH", path: "/repos/acme/shop/issues/comments/1001", status: http.StatusInternalServerError}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newFakeGitHub(t, "", "tok")
			f.seedAs("acme/shop#7", bot, marker+"\nold")
			f.inject(tt.faults...)
			w := &waits{}
			res, err := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "acme/shop", HTTPClient: srv.Client(), Retry: RetryOptions{sleep: w.sleep}}.Upsert(context.Background(), 7, marker+"\nnew", marker)
			if err != nil {
				t.Fatal(err)
			}
			if res.ID != 1001 {
				t.Errorf("Upsert = %+v, want comment 1001", res)
			}
			if diff := cmp.Diff(tt.wantWaits, w.all()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{marker + "\nnew"}, f.withMarkerBodies("acme/shop#7")); diff != "" {
				t.Errorf("comments holding the marker (-want +got):\n%s", diff)
			}
		})
	}
}

// TestGitLabRetries429 is the same on GitLab, whose rate limit sends Retry-After too.
func TestGitLabRetries429(t *testing.T) {
	f, srv := newFakeGitLab(t, "", "glpat-x")
	f.inject(fault{method: "GET", path: "/api/v4/projects/42/merge_requests/3/notes", status: http.StatusTooManyRequests,
		header: map[string]string{"Retry-After": "2", "RateLimit-Remaining": "0"}, body: "Retry later"})
	w := &waits{}
	res, err := GitLab{BaseURL: srv.URL, Token: "glpat-x", Project: "42", HTTPClient: srv.Client(), Retry: RetryOptions{sleep: w.sleep}}.Upsert(context.Background(), 3, marker+"\nplan", marker)
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != ActionCreated {
		t.Errorf("Upsert = %+v, want a created note", res)
	}
	if diff := cmp.Diff([]time.Duration{2 * time.Second}, w.all()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	if n := countRequests(f.requestLog(), "GET", "/api/v4/projects/42/merge_requests/3/notes"); n != 2 {
		t.Errorf("listed the notes %d times, want 2 (one refused, one retried)", n)
	}
}

// TestRetriesAreBounded: a server that keeps failing fails the run after
// Attempts tries with an error that says so and never holds the token; a
// Retry-After beyond MaxWait fails at once.
func TestRetriesAreBounded(t *testing.T) {
	const secret = "ghp_ExhaustedS3cret"
	list := "/repos/acme/shop/issues/7/comments"
	echo := `{"message":"upstream rejected Bearer ` + secret + `"}`
	tests := []struct {
		name      string
		faults    []fault
		wantErr   []string
		wantWaits []time.Duration
		wantLists int
	}{
		{
			name:      "503 four times",
			faults:    []fault{{method: "GET", path: list, status: 503, body: echo}, {method: "GET", path: list, status: 503, body: echo}, {method: "GET", path: list, status: 503, body: echo}, {method: "GET", path: list, status: 503, body: echo}},
			wantErr:   []string{"github acme/shop#7: list comments: GET ", "503 Service Unavailable", "upstream rejected Bearer [token]", "gave up after 4 attempts"},
			wantWaits: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, wantLists: 4,
		},
		{
			name:      "Retry-After of an hour",
			faults:    []fault{{method: "GET", path: list, status: 429, header: map[string]string{"Retry-After": "3600"}, body: echo}},
			wantErr:   []string{"429 Too Many Requests", "the API asked to wait 1h0m0s, more than the 1m0s tandem waits"},
			wantLists: 1,
		},
		{
			name:      "400 is not retried",
			faults:    []fault{{method: "GET", path: list, status: 400, body: `{"message":"Problems parsing JSON"}`}},
			wantErr:   []string{"400 Bad Request: Problems parsing JSON"},
			wantLists: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newFakeGitHub(t, "", secret)
			f.inject(tt.faults...)
			w := &waits{}
			_, err := GitHub{BaseURL: srv.URL, Token: secret, Repo: "acme/shop", HTTPClient: srv.Client(), Retry: RetryOptions{sleep: w.sleep}}.Upsert(context.Background(), 7, marker+"\nnew", marker)
			if err == nil {
				t.Fatal("Upsert succeeded against a failing API")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error holds the token: %v", err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if diff := cmp.Diff(tt.wantWaits, w.all()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			if n := countRequests(f.requestLog(), "GET", list); n != tt.wantLists {
				t.Errorf("listed %d times, want %d", n, tt.wantLists)
			}
		})
	}
}

// TestCreateAnsweredWithServerErrorIsNotDuplicated: a create answered 502 may
// have been written all the same. It is not sent again blindly: the comments
// are listed again and ours, if it landed, is edited.
func TestCreateAnsweredWithServerErrorIsNotDuplicated(t *testing.T) {
	t.Run("github", func(t *testing.T) {
		f, srv := newFakeGitHub(t, "", "tok")
		f.inject(fault{method: "POST", path: "/repos/acme/shop/issues/7/comments", status: http.StatusBadGateway, after: true})
		w := &waits{}
		res, err := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "acme/shop", HTTPClient: srv.Client(), Retry: RetryOptions{sleep: w.sleep}}.Upsert(context.Background(), 7, marker+"\nplan", marker)
		if err != nil {
			t.Fatal(err)
		}
		if res.ID != 1001 {
			t.Errorf("Upsert = %+v, want comment 1001", res)
		}
		if diff := cmp.Diff([]string{marker + "\nplan"}, f.withMarkerBodies("acme/shop#7")); diff != "" {
			t.Errorf("comments holding the marker (-want +got):\n%s", diff)
		}
		if n := countRequests(f.requestLog(), "POST", "/repos/acme/shop/issues/7/comments"); n != 1 {
			t.Errorf("created %d times, want 1", n)
		}
	})
	t.Run("gitlab", func(t *testing.T) {
		f, srv := newFakeGitLab(t, "", "glpat-x")
		f.inject(fault{method: "POST", path: "/api/v4/projects/42/merge_requests/3/notes", status: http.StatusGatewayTimeout, after: true})
		w := &waits{}
		if _, err := (GitLab{BaseURL: srv.URL, Token: "glpat-x", Project: "42", HTTPClient: srv.Client(), Retry: RetryOptions{sleep: w.sleep}}).Upsert(context.Background(), 3, marker+"\nplan", marker); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{marker + "\nplan"}, f.withMarkerBodies("42!3")); diff != "" {
			t.Errorf("notes holding the marker (-want +got):\n%s", diff)
		}
		if n := countRequests(f.requestLog(), "POST", "/api/v4/projects/42/merge_requests/3/notes"); n != 1 {
			t.Errorf("created %d times, want 1", n)
		}
	})
}

// TestIdentityLookupFailureIsClear: without an identity tandem cannot tell
// its comment from a planted one, so it stops and says how to name it.
func TestIdentityLookupFailureIsClear(t *testing.T) {
	f, srv := newFakeGitHub(t, "", "tok")
	f.appTokens["tok"] = true
	f.inject(fault{method: "POST", path: "/graphql", status: http.StatusOK, body: `{"errors":[{"message":"Resource not accessible by integration"}]}`})
	_, err := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "acme/shop", HTTPClient: srv.Client()}.Upsert(context.Background(), 7, marker, marker)
	if err == nil || !strings.Contains(err.Error(), "cannot tell whose comments are tandem's") || !strings.Contains(err.Error(), "name the author") {
		t.Errorf("Upsert error = %v, want one that asks for the author", err)
	}
	for _, r := range f.requestLog() {
		if strings.Contains(r.URI, "/comments") {
			t.Errorf("comments were touched without an identity: %s %s", r.Method, r.URI)
		}
	}
}
