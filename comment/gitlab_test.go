package comment

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeGitLab implements the merge-request notes endpoints Upsert calls, with
// in-memory notes, PRIVATE-TOKEN auth and GitLab's offset pagination
// (X-Next-Page and a Link header). Projects are addressed by numeric id or by
// their URL-encoded full path, as one path segment.
type fakeGitLab struct {
	prefix   string // a path prefix for instances served under one, e.g. /gitlab
	token    string
	linkOnly bool // send only the Link header, not X-Next-Page
	// user is the token's user, as GET /user answers.
	user glUser

	mu       sync.Mutex
	nextID   int64
	projects map[string]string // path -> id
	notes    map[string][]glNote
	requests []string // "METHOD escaped-path?query"
	log      []recorded
	faults   []fault
}

// glBot is the project access token's bot user; glHuman is someone else.
var (
	glBot   = glUser{ID: 91, Username: "project_42_bot_1f2e"}
	glHuman = glUser{ID: 12, Username: "mallory"}
)

func newFakeGitLab(t *testing.T, prefix, token string) (*fakeGitLab, *httptest.Server) {
	t.Helper()
	f := &fakeGitLab{prefix: prefix, token: token, nextID: 500, user: glBot,
		projects: map[string]string{"platform/shop/deploy": "42"}, notes: map[string][]glNote{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeGitLab) inject(fs ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fs...)
}

func (f *fakeGitLab) requestLog() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.log...)
}

func (f *fakeGitLab) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
	f.log = append(f.log, recorded{Method: r.Method, URI: r.URL.RequestURI(), Token: r.Header.Get("PRIVATE-TOKEN"), At: time.Now()})
	ft, hit := takeFault(&f.faults, r.Method, strings.TrimPrefix(path, f.prefix))
	f.mu.Unlock()
	if hit && !ft.after {
		ft.write(w)
		return
	}
	if hit {
		f.serveAuthed(httptest.NewRecorder(), r, path)
		ft.write(w)
		return
	}
	f.serveAuthed(w, r, path)
}

func (f *fakeGitLab) serveAuthed(w http.ResponseWriter, r *http.Request, path string) {
	if r.Header.Get("PRIVATE-TOKEN") != f.token {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return
	}
	if path == f.prefix+"/api/v4/user" && r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, f.user)
		return
	}
	rest, ok := strings.CutPrefix(path, f.prefix+"/api/v4/projects/")
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
		return
	}
	seg := strings.Split(rest, "/")
	if len(seg) < 4 || seg[1] != "merge_requests" || seg[3] != "notes" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
		return
	}
	project, err := url.PathUnescape(seg[0])
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad project"})
		return
	}
	f.mu.Lock()
	if id, ok := f.projects[project]; ok {
		project = id
	}
	known := project == "42"
	f.mu.Unlock()
	if !known {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "404 Project Not Found"})
		return
	}
	key := project + "!" + seg[2]
	switch {
	case len(seg) == 4 && r.Method == http.MethodGet:
		f.list(w, r, key)
	case len(seg) == 4 && r.Method == http.MethodPost:
		f.create(w, r, key)
	case len(seg) == 5 && r.Method == http.MethodPut:
		f.edit(w, r, key, seg[4])
	case len(seg) == 5 && r.Method == http.MethodDelete:
		f.remove(w, key, seg[4])
	default:
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "405 Method Not Allowed"})
	}
}

func (f *fakeGitLab) seed(key string, notes ...glNote) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range notes {
		f.nextID++
		n.ID = f.nextID
		f.notes[key] = append(f.notes[key], n)
	}
}

func (f *fakeGitLab) list(w http.ResponseWriter, r *http.Request, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	perPage, page := 20, 1
	if v, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && v > 0 {
		perPage = min(v, 100)
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && v > 0 {
		page = v
	}
	all := f.notes[key]
	last := max(1, (len(all)+perPage-1)/perPage)
	from, to := min(len(all), (page-1)*perPage), min(len(all), page*perPage)
	next := ""
	if page < last {
		next = strconv.Itoa(page + 1)
		q := r.URL.Query()
		q.Set("page", next)
		w.Header().Set("Link", fmt.Sprintf(`<http://%s%s?%s>; rel="next", <http://%s%s?page=1>; rel="first"`, r.Host, r.URL.EscapedPath(), q.Encode(), r.Host, r.URL.EscapedPath()))
	}
	if !f.linkOnly {
		w.Header().Set("X-Page", strconv.Itoa(page))
		w.Header().Set("X-Per-Page", strconv.Itoa(perPage))
		w.Header().Set("X-Next-Page", next)
		w.Header().Set("X-Total", strconv.Itoa(len(all)))
	}
	writeJSON(w, http.StatusOK, all[from:to])
}

func (f *fakeGitLab) create(w http.ResponseWriter, r *http.Request, key string) {
	var in struct{ Body string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Body == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": map[string][]string{"note": {"can't be blank"}}})
		return
	}
	u := f.user
	f.seed(key, glNote{Body: in.Body, Author: &u})
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.notes[key]
	writeJSON(w, http.StatusCreated, n[len(n)-1])
}

func (f *fakeGitLab) edit(w http.ResponseWriter, r *http.Request, key, id string) {
	var in struct{ Body string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Body == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": map[string][]string{"note": {"can't be blank"}}})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range f.notes[key] {
		if strconv.FormatInt(n.ID, 10) == id {
			f.notes[key][i].Body = in.Body
			writeJSON(w, http.StatusOK, f.notes[key][i])
			return
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "404 Not found"})
}

func (f *fakeGitLab) remove(w http.ResponseWriter, key, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range f.notes[key] {
		if strconv.FormatInt(n.ID, 10) == id {
			f.notes[key] = append(f.notes[key][:i:i], f.notes[key][i+1:]...)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "404 Not found"})
}

func (f *fakeGitLab) withMarkerBodies(key string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, n := range f.notes[key] {
		if !n.System && strings.Contains(n.Body, marker) {
			out = append(out, n.Body)
		}
	}
	return out
}

func (f *fakeGitLab) takeRequests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.requests
	f.requests = nil
	return r
}

func TestGitLabUpsertCreatesThenEdits(t *testing.T) {
	tests := []struct {
		name     string
		prefix   string
		project  string
		wantPath string // the project as it must appear in the request path
		wantURL  bool
	}{
		{name: "full path is escaped", project: "platform/shop/deploy", wantPath: "platform%2Fshop%2Fdeploy", wantURL: true},
		{name: "numeric id", project: "42", wantPath: "42"},
		{name: "self-managed under a path prefix", prefix: "/gitlab", project: "platform/shop/deploy", wantPath: "platform%2Fshop%2Fdeploy", wantURL: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newFakeGitLab(t, tt.prefix, "glpat-test")
			f.seed("42!7", glNote{Body: "changed the description", System: true}, glNote{Body: "looks good"})
			g := GitLab{BaseURL: srv.URL + tt.prefix + "/", Token: "glpat-test", Project: tt.project, HTTPClient: srv.Client()}
			ctx := context.Background()
			notes := tt.prefix + "/api/v4/projects/" + tt.wantPath + "/merge_requests/7/notes"

			first, err := g.Upsert(ctx, 7, marker+"\nplan one", marker)
			if err != nil {
				t.Fatal(err)
			}
			if first.Action != ActionCreated || first.ID == 0 {
				t.Errorf("first Upsert = %+v, want a created note", first)
			}
			wantURL := ""
			if tt.wantURL {
				wantURL = fmt.Sprintf("%s%s/platform/shop/deploy/-/merge_requests/7#note_%d", srv.URL, tt.prefix, first.ID)
			}
			if first.URL != wantURL {
				t.Errorf("URL = %q, want %q", first.URL, wantURL)
			}
			wantReq := []string{"GET " + tt.prefix + "/api/v4/user", "GET " + notes + "?per_page=100&sort=asc&order_by=created_at", "POST " + notes}
			if diff := cmp.Diff(wantReq, f.takeRequests()); diff != "" {
				t.Errorf("first run requests (-want +got):\n%s", diff)
			}

			second, err := g.Upsert(ctx, 7, marker+"\nplan two", marker)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(Result{Action: ActionUpdated, ID: first.ID, URL: first.URL, Author: glBot.Username}, second); diff != "" {
				t.Errorf("second Upsert (-want +got):\n%s", diff)
			}
			wantReq = []string{"GET " + tt.prefix + "/api/v4/user", "GET " + notes + "?per_page=100&sort=asc&order_by=created_at", fmt.Sprintf("PUT %s/%d", notes, first.ID)}
			if diff := cmp.Diff(wantReq, f.takeRequests()); diff != "" {
				t.Errorf("second run requests (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{marker + "\nplan two"}, f.withMarkerBodies("42!7")); diff != "" {
				t.Errorf("notes holding the marker (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGitLabUpsertPaginates(t *testing.T) {
	for _, linkOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("linkOnly=%v", linkOnly), func(t *testing.T) {
			f, srv := newFakeGitLab(t, "", "tok")
			f.linkOnly = linkOnly
			// A system note quoting the marker comes first: it must not be taken for ours.
			notes := []glNote{{Body: "mentioned in " + marker, System: true}}
			for i := range 130 {
				notes = append(notes, glNote{Body: fmt.Sprintf("note %d", i)})
			}
			me := glBot
			notes[110] = glNote{Body: marker + "\nold plan", Author: &me}
			f.seed("42!3", notes...)
			got, err := GitLab{BaseURL: srv.URL, Token: "tok", Project: "platform/shop/deploy", HTTPClient: srv.Client()}.Upsert(context.Background(), 3, marker+"\nnew plan", marker)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(Result{Action: ActionUpdated, ID: 611, URL: srv.URL + "/platform/shop/deploy/-/merge_requests/3#note_611", Author: glBot.Username}, got); diff != "" {
				t.Errorf("Upsert (-want +got):\n%s", diff)
			}
			reqs := f.takeRequests()
			if len(reqs) != 4 || reqs[0] != "GET /api/v4/user" || !strings.Contains(reqs[2], "page=2") || reqs[3] != "PUT /api/v4/projects/platform%2Fshop%2Fdeploy/merge_requests/3/notes/611" {
				t.Errorf("requests = %q, want two pages listed and note 611 edited", reqs)
			}
			if diff := cmp.Diff([]string{marker + "\nnew plan"}, f.withMarkerBodies("42!3")); diff != "" {
				t.Errorf("notes holding the marker (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGitLabErrorsNeverHoldTheToken(t *testing.T) {
	const secret = "glpat-S3cr3tT0kenValue"
	_, srv := newFakeGitLab(t, "", "another-token")
	_, err := GitLab{BaseURL: srv.URL, Token: secret, Project: "platform/shop/deploy", HTTPClient: srv.Client()}.Upsert(context.Background(), 3, marker, marker)
	if err == nil {
		t.Fatal("Upsert with a wrong token succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, secret) {
		t.Errorf("error holds the token: %s", msg)
	}
	for _, want := range []string{"gitlab platform/shop/deploy!3", "cannot tell whose notes are tandem's", "GET ", "401"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
}

func TestGitLabUnknownProject(t *testing.T) {
	_, srv := newFakeGitLab(t, "", "tok")
	_, err := GitLab{BaseURL: srv.URL, Token: "tok", Project: "nope/nothing", HTTPClient: srv.Client()}.Upsert(context.Background(), 1, marker, marker)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "404 Project Not Found") {
		t.Errorf("Upsert error = %v, want a 404 naming the project", err)
	}
}

func TestAPIMessage(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{name: "github", raw: `{"message":"Bad credentials","documentation_url":"https://docs.github.com"}`, want: "Bad credentials"},
		{name: "gitlab field errors", raw: `{"message":{"note":["is too long (maximum is 1000000 characters)"]}}`, want: `{"note":["is too long (maximum is 1000000 characters)"]}`},
		{name: "oauth", raw: `{"error":"insufficient_scope","error_description":"The request requires higher privileges"}`, want: "The request requires higher privileges"},
		{name: "html", raw: "<html>\n<body>Bad Gateway</body>\n</html>", want: "<html> <body>Bad Gateway</body> </html>"},
		{name: "long", raw: strings.Repeat("é", 400), want: strings.Repeat("é", 150) + "…"},
		{name: "github validation", raw: `{"message":"Validation Failed","errors":[{"resource":"IssueComment","code":"custom","field":"body","message":"body is too long (maximum is 65536 characters)"},{"resource":"IssueComment","code":"missing_field","field":"body"}]}`,
			want: "Validation Failed: body is too long (maximum is 65536 characters); body missing_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := apiMessage([]byte(tt.raw)); got != tt.want {
				t.Errorf("apiMessage = %q, want %q", got, tt.want)
			}
		})
	}
}
