package comment

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const marker = "<!-- tandem:report -->"

// fakeGitHub implements the issue-comment endpoints Upsert calls, with
// in-memory comments and their authors, GitHub's auth headers, Link-header
// pagination, GET /user (403 for an App installation token, as GitHub
// answers) and the GraphQL viewer query. It records every request, with
// whether it carried a token, and answers injected faults first.
type fakeGitHub struct {
	prefix string // "" for api.github.com, "/api/v3" for GitHub Enterprise Server
	token  string
	// users maps a token to its identity; appTokens are installation tokens.
	users     map[string]ghUser
	appTokens map[string]bool
	// echoAuth makes a 401 repeat the Authorization header, to prove the client redacts it.
	echoAuth bool
	// nextHost, when set, makes list pages link to another host.
	nextHost string

	mu       sync.Mutex
	nextID   int64
	comments map[string][]ghComment // by "owner/repo#n"
	requests []string               // "METHOD path?query"
	log      []recorded
	faults   []fault
}

// recorded is one request as the fake saw it.
type recorded struct {
	Method, URI string
	// Token is the credential the request carried, "" for none.
	Token string
	At    time.Time
}

// fault is an answer the fake gives, once, to the next request whose method
// and path (without the prefix) match, instead of serving it.
type fault struct {
	method, path string
	status       int
	header       map[string]string
	body         string
	// after, when set, serves the request first and then answers status:
	// the write happened, but the client is told it failed.
	after bool
	// drop closes the connection instead of answering (status is unused):
	// an API, proxy or network that resets the connection.
	drop bool
}

// bot is the identity of the fakes' default token; octocat is someone else.
var (
	bot     = ghUser{Login: "tandem-bot", ID: 7}
	octocat = ghUser{Login: "octocat", ID: 583231}
)

func newFakeGitHub(t *testing.T, prefix, token string) (*fakeGitHub, *httptest.Server) {
	t.Helper()
	f := &fakeGitHub{prefix: prefix, token: token, nextID: 1000, comments: map[string][]ghComment{},
		users: map[string]ghUser{token: bot}, appTokens: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"/user", f.user)
	mux.HandleFunc("POST "+strings.TrimSuffix(prefix, "/v3")+"/graphql", f.graphql)
	mux.HandleFunc("GET "+prefix+"/repos/{owner}/{repo}/issues/{n}/comments", f.list)
	mux.HandleFunc("POST "+prefix+"/repos/{owner}/{repo}/issues/{n}/comments", f.create)
	mux.HandleFunc("PATCH "+prefix+"/repos/{owner}/{repo}/issues/comments/{id}", f.edit)
	mux.HandleFunc("DELETE "+prefix+"/repos/{owner}/{repo}/issues/comments/{id}", f.remove)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
		f.log = append(f.log, recorded{Method: r.Method, URI: r.URL.RequestURI(), Token: tok, At: time.Now()})
		ft, hit := f.takeFault(r.Method, strings.TrimPrefix(r.URL.Path, prefix))
		_, known := f.users[tok]
		f.mu.Unlock()
		if hit && !ft.after {
			ft.write(w)
			return
		}
		if !known {
			msg := "Bad credentials"
			if f.echoAuth {
				msg += " (" + r.Header.Get("Authorization") + ")"
			}
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
			return
		}
		if r.Header.Get("Accept") != "application/vnd.github+json" || r.Header.Get("X-GitHub-Api-Version") != "2022-11-28" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "missing Accept or X-GitHub-Api-Version"})
			return
		}
		if hit {
			mux.ServeHTTP(httptest.NewRecorder(), r)
			ft.write(w)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

// inject queues faults; each answers one matching request.
func (f *fakeGitHub) inject(fs ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fs...)
}

func (f *fakeGitHub) takeFault(method, path string) (fault, bool) {
	return takeFault(&f.faults, method, path)
}

func takeFault(faults *[]fault, method, path string) (fault, bool) {
	for i, ft := range *faults {
		if ft.method == method && ft.path == path {
			*faults = append((*faults)[:i:i], (*faults)[i+1:]...)
			return ft, true
		}
	}
	return fault{}, false
}

func (ft fault) write(w http.ResponseWriter) {
	if ft.drop {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		_ = conn.Close()
		return
	}
	for k, v := range ft.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(ft.status)
	_, _ = io.WriteString(w, ft.body)
}

func (f *fakeGitHub) caller(r *http.Request) ghUser {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.users[tok]
}

func (f *fakeGitHub) user(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	app := f.appTokens[tok]
	f.mu.Unlock()
	if app {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user"})
		return
	}
	writeJSON(w, http.StatusOK, f.caller(r))
}

func (f *fakeGitHub) graphql(w http.ResponseWriter, r *http.Request) {
	var in struct{ Query string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || !strings.Contains(in.Query, "viewer") {
		writeJSON(w, http.StatusOK, map[string]any{"errors": []map[string]string{{"message": "unsupported query"}}})
		return
	}
	u := f.caller(r)
	// A bot's databaseId may number it in another table than REST's user id:
	// answer one that differs, so a client matching on it finds nothing.
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"viewer": map[string]any{"login": u.Login, "databaseId": u.ID + 1_000_000}}})
}

// requestLog returns every request so far.
func (f *fakeGitHub) requestLog() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.log...)
}

// seed adds comments by octocat, someone other than the token's identity.
func (f *fakeGitHub) seed(key string, bodies ...string) { f.seedAs(key, octocat, bodies...) }

func (f *fakeGitHub) seedAs(key string, by ghUser, bodies ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range bodies {
		f.nextID++
		u := by
		f.comments[key] = append(f.comments[key], ghComment{ID: f.nextID, Body: b, HTMLURL: fmt.Sprintf("https://github.com/%s#issuecomment-%d", key, f.nextID), User: &u})
	}
}

func (f *fakeGitHub) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := r.PathValue("owner") + "/" + r.PathValue("repo") + "#" + r.PathValue("n")
	perPage, page := 30, 1
	if v, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && v > 0 {
		perPage = min(v, 100)
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && v > 0 {
		page = v
	}
	all := f.comments[key]
	last := max(1, (len(all)+perPage-1)/perPage)
	from, to := min(len(all), (page-1)*perPage), min(len(all), page*perPage)
	host := r.Host
	if f.nextHost != "" {
		host = f.nextHost
	}
	link := func(p int) string {
		return fmt.Sprintf("<http://%s%s?per_page=%d&page=%d>", host, r.URL.Path, perPage, p)
	}
	var rels []string
	if page < last {
		rels = append(rels, link(page+1)+`; rel="next"`, link(last)+`; rel="last"`)
	}
	if page > 1 {
		rels = append(rels, link(page-1)+`; rel="prev"`, link(1)+`; rel="first"`)
	}
	if len(rels) > 0 {
		w.Header().Set("Link", strings.Join(rels, ", "))
	}
	writeJSON(w, http.StatusOK, all[from:to])
}

func (f *fakeGitHub) create(w http.ResponseWriter, r *http.Request) {
	var in struct{ Body string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Body == "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Validation Failed"})
		return
	}
	if tooLong(w, in.Body) {
		return
	}
	key := r.PathValue("owner") + "/" + r.PathValue("repo") + "#" + r.PathValue("n")
	f.seedAs(key, f.caller(r), in.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.comments[key]
	writeJSON(w, http.StatusCreated, c[len(c)-1])
}

func (f *fakeGitHub) edit(w http.ResponseWriter, r *http.Request) {
	var in struct{ Body string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Body == "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Validation Failed"})
		return
	}
	if tooLong(w, in.Body) {
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	repo := r.PathValue("owner") + "/" + r.PathValue("repo") + "#"
	f.mu.Lock()
	defer f.mu.Unlock()
	for key, cs := range f.comments {
		if !strings.HasPrefix(key, repo) {
			continue
		}
		for i := range cs {
			if cs[i].ID == id {
				cs[i].Body = in.Body
				writeJSON(w, http.StatusOK, cs[i])
				return
			}
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
}

func (f *fakeGitHub) remove(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	f.mu.Lock()
	defer f.mu.Unlock()
	for key, cs := range f.comments {
		for i := range cs {
			if cs[i].ID == id {
				f.comments[key] = append(cs[:i:i], cs[i+1:]...)
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
}

// withMarkerBodies returns the bodies on one pull request that hold the marker.
func (f *fakeGitHub) withMarkerBodies(key string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.comments[key] {
		if strings.Contains(c.Body, marker) {
			out = append(out, c.Body)
		}
	}
	return out
}

func (f *fakeGitHub) takeRequests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.requests
	f.requests = nil
	return r
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func TestGitHubUpsertCreatesThenEdits(t *testing.T) {
	for _, prefix := range []string{"", "/api/v3"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			f, srv := newFakeGitHub(t, prefix, "ghp_test")
			f.seed("acme/shop#7", "LGTM", "please rebase")
			g := GitHub{BaseURL: srv.URL + prefix + "/", Token: "ghp_test", Repo: "acme/shop", HTTPClient: srv.Client()}
			ctx := context.Background()

			first, err := g.Upsert(ctx, 7, marker+"\nplan one", marker)
			if err != nil {
				t.Fatal(err)
			}
			if first.Action != ActionCreated || first.ID == 0 || !strings.Contains(first.URL, "acme/shop") {
				t.Errorf("first Upsert = %+v, want a created comment with id and URL", first)
			}
			wantReq := []string{
				"GET " + prefix + "/user",
				"GET " + prefix + "/repos/acme/shop/issues/7/comments?per_page=100",
				"POST " + prefix + "/repos/acme/shop/issues/7/comments",
			}
			if diff := cmp.Diff(wantReq, f.takeRequests()); diff != "" {
				t.Errorf("first run requests (-want +got):\n%s", diff)
			}

			second, err := g.Upsert(ctx, 7, marker+"\nplan two", marker)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(Result{Action: ActionUpdated, ID: first.ID, URL: first.URL, Author: "tandem-bot"}, second); diff != "" {
				t.Errorf("second Upsert (-want +got):\n%s", diff)
			}
			wantReq = []string{
				"GET " + prefix + "/user",
				"GET " + prefix + "/repos/acme/shop/issues/7/comments?per_page=100",
				fmt.Sprintf("PATCH %s/repos/acme/shop/issues/comments/%d", prefix, first.ID),
			}
			if diff := cmp.Diff(wantReq, f.takeRequests()); diff != "" {
				t.Errorf("second run requests (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{marker + "\nplan two"}, f.withMarkerBodies("acme/shop#7")); diff != "" {
				t.Errorf("comments holding the marker (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGitHubUpsertPaginates(t *testing.T) {
	others := make([]string, 150)
	for i := range others {
		others[i] = fmt.Sprintf("comment %d", i)
	}
	tests := []struct {
		name       string
		markerAt   int // index among 150 comments, -1 for none
		wantAction string
		wantReq    []string
	}{
		{
			name: "marker on page 2", markerAt: 120, wantAction: ActionUpdated,
			wantReq: []string{
				"GET /user",
				"GET /repos/acme/shop/issues/9/comments?per_page=100",
				"GET /repos/acme/shop/issues/9/comments?per_page=100&page=2",
				"PATCH /repos/acme/shop/issues/comments/1121",
			},
		},
		{
			name: "no marker on any page", markerAt: -1, wantAction: ActionCreated,
			wantReq: []string{
				"GET /user",
				"GET /repos/acme/shop/issues/9/comments?per_page=100",
				"GET /repos/acme/shop/issues/9/comments?per_page=100&page=2",
				"POST /repos/acme/shop/issues/9/comments",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newFakeGitHub(t, "", "tok")
			if tt.markerAt >= 0 {
				f.seed("acme/shop#9", others[:tt.markerAt]...)
				f.seedAs("acme/shop#9", bot, marker+"\nold plan")
				f.seed("acme/shop#9", others[tt.markerAt+1:]...)
			} else {
				f.seed("acme/shop#9", others...)
			}
			got, err := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "acme/shop", HTTPClient: srv.Client()}.Upsert(context.Background(), 9, marker+"\nnew plan", marker)
			if err != nil {
				t.Fatal(err)
			}
			if got.Action != tt.wantAction {
				t.Errorf("Action = %q, want %q", got.Action, tt.wantAction)
			}
			if diff := cmp.Diff(tt.wantReq, f.takeRequests()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{marker + "\nnew plan"}, f.withMarkerBodies("acme/shop#9")); diff != "" {
				t.Errorf("comments holding the marker (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGitHubUpsertAddsMissingMarker(t *testing.T) {
	f, srv := newFakeGitHub(t, "", "tok")
	g := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "acme/shop", HTTPClient: srv.Client()}
	for range 2 {
		if _, err := g.Upsert(context.Background(), 1, "plain text", marker); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{marker + "\nplain text"}, f.withMarkerBodies("acme/shop#1")); diff != "" {
		t.Errorf("comments holding the marker (-want +got):\n%s", diff)
	}
}

func TestGitHubErrorsNeverHoldTheToken(t *testing.T) {
	const secret = "ghp_S3cr3tT0kenValue"
	for _, echo := range []bool{false, true} {
		t.Run(fmt.Sprintf("echo=%v", echo), func(t *testing.T) {
			f, srv := newFakeGitHub(t, "", "another-token")
			f.echoAuth = echo
			_, err := GitHub{BaseURL: srv.URL, Token: secret, Repo: "acme/shop", HTTPClient: srv.Client()}.Upsert(context.Background(), 3, marker, marker)
			if err == nil {
				t.Fatal("Upsert with a wrong token succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, secret) {
				t.Errorf("error holds the token: %s", msg)
			}
			for _, want := range []string{"github acme/shop#3", "cannot tell whose comments are tandem's", "GET ", "401", "Bad credentials"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
		})
	}
}

func TestGitHubRefusesPaginationToAnotherHost(t *testing.T) {
	var leaked atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { leaked.Store(true) }))
	defer other.Close()
	f, srv := newFakeGitHub(t, "", "tok")
	f.nextHost = strings.TrimPrefix(other.URL, "http://")
	seed := make([]string, 101)
	for i := range seed {
		seed[i] = "x"
	}
	f.seed("acme/shop#2", seed...)
	_, err := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "acme/shop", HTTPClient: srv.Client()}.Upsert(context.Background(), 2, marker, marker)
	if err == nil || !strings.Contains(err.Error(), "refusing to follow pagination link") {
		t.Errorf("Upsert error = %v, want a refusal to follow the link", err)
	}
	if leaked.Load() {
		t.Error("the token was sent to another host")
	}
}

func TestGitHubArguments(t *testing.T) {
	tests := []struct {
		name    string
		g       GitHub
		pr      int
		body    string
		marker  string
		wantErr string
	}{
		{name: "repo without owner", g: GitHub{Repo: "shop", Token: "t"}, pr: 1, body: "b", marker: marker, wantErr: `github repository "shop": want OWNER/REPO`},
		{name: "repo with extra path", g: GitHub{Repo: "a/b/c", Token: "t"}, pr: 1, body: "b", marker: marker, wantErr: `want OWNER/REPO`},
		{name: "no pull request number", g: GitHub{Repo: "a/b", Token: "t"}, pr: 0, body: "b", marker: marker, wantErr: "github a/b#0: number 0: want a positive number"},
		{name: "empty marker", g: GitHub{Repo: "a/b", Token: "t"}, pr: 1, body: "b", marker: " ", wantErr: "empty marker"},
		{name: "empty body", g: GitHub{Repo: "a/b", Token: "t"}, pr: 1, body: "\n", marker: marker, wantErr: "empty body"},
		{name: "no token", g: GitHub{Repo: "a/b"}, pr: 1, body: "b", marker: marker, wantErr: "github a/b#1: no token"},
		{name: "token with newline", g: GitHub{Repo: "a/b", Token: "abc\n"}, pr: 1, body: "b", marker: marker, wantErr: "token contains spaces or control characters"},
		{name: "bad base URL", g: GitHub{Repo: "a/b", Token: "t", BaseURL: "ftp://x"}, pr: 1, body: "b", marker: marker, wantErr: `base URL "ftp://x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.g.Upsert(context.Background(), tt.pr, tt.body, tt.marker)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Upsert error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestNextLink(t *testing.T) {
	tests := []struct {
		name string
		link []string
		want string
	}{
		{name: "none"},
		{name: "github", link: []string{`<https://api.github.com/repositories/1/issues/7/comments?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/issues/7/comments?per_page=100&page=3>; rel="last"`}, want: "https://api.github.com/repositories/1/issues/7/comments?per_page=100&page=2"},
		{name: "last page", link: []string{`<https://x/a?page=1>; rel="first", <https://x/a?page=2>; rel="prev"`}},
		{name: "several rels, unquoted, odd spacing", link: []string{`<https://x/b?page=4> ;rel=last, <https://x/b?page=3>;  rel="prefetch next"`}, want: "https://x/b?page=3"},
		{name: "second header", link: []string{`<https://x/a>; rel="prev"`, `<https://x/c>; rel="next"`}, want: "https://x/c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, l := range tt.link {
				h.Add("Link", l)
			}
			if got := nextLink(h); got != tt.want {
				t.Errorf("nextLink = %q, want %q", got, tt.want)
			}
		})
	}
}

// tooLong answers a body over GitHub's limit as GitHub does.
func tooLong(w http.ResponseWriter, body string) bool {
	if len([]rune(body)) <= 65536 {
		return false
	}
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed",
		"errors":            []map[string]string{{"resource": "IssueComment", "code": "custom", "field": "body", "message": "body is too long (maximum is 65536 characters)"}},
		"documentation_url": "https://docs.github.com/rest/issues/comments#create-an-issue-comment"})
	return true
}
