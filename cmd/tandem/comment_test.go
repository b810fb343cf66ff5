package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/cmd/tandem/internal/diffview"
)

// forge is a small GitHub and GitLab in one: the issue-comment and
// merge-request-note endpoints `tandem comment` calls, with their auth headers
// and in-memory comments (one page; the comment package's tests cover pagination).
type forge struct {
	githubToken, gitlabToken string

	mu       sync.Mutex
	nextID   int64
	bodies   map[string]map[int64]string // "acme/shop#7" or "42!3" -> id -> body
	requests []string
}

func newForge(t *testing.T) (*forge, *httptest.Server) {
	t.Helper()
	f := &forge{githubToken: "ghp_cmdtest", gitlabToken: "glpat-cmdtest", nextID: 100, bodies: map[string]map[int64]string{}}
	mux := http.NewServeMux()
	gh := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+f.githubToken || r.Header.Get("X-GitHub-Api-Version") != "2022-11-28" {
				reply(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials"})
				return
			}
			h(w, r)
		}
	}
	gl := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("PRIVATE-TOKEN") != f.gitlabToken {
				reply(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
				return
			}
			// The project path travels as one escaped segment.
			if p := r.PathValue("project"); p != "42" && p != "platform/shop" {
				reply(w, http.StatusNotFound, map[string]string{"message": "404 Project Not Found"})
				return
			}
			h(w, r)
		}
	}
	ghKey := func(r *http.Request) string {
		return r.PathValue("owner") + "/" + r.PathValue("repo") + "#" + r.PathValue("n")
	}
	glKey := func(r *http.Request) string { return "42!" + r.PathValue("iid") }
	mux.HandleFunc("GET /api/v3/repos/{owner}/{repo}/issues/{n}/comments", gh(func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, f.list(ghKey(r), "body", "html_url"))
	}))
	mux.HandleFunc("POST /api/v3/repos/{owner}/{repo}/issues/{n}/comments", gh(func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusCreated, f.save(ghKey(r), 0, r))
	}))
	mux.HandleFunc("PATCH /api/v3/repos/{owner}/{repo}/issues/comments/{id}", gh(func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		reply(w, http.StatusOK, f.save(f.keyOf(id), id, r))
	}))
	mux.HandleFunc("GET /api/v4/projects/{project}/merge_requests/{iid}/notes", gl(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Next-Page", "")
		reply(w, http.StatusOK, f.list(glKey(r), "body", ""))
	}))
	mux.HandleFunc("POST /api/v4/projects/{project}/merge_requests/{iid}/notes", gl(func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusCreated, f.save(glKey(r), 0, r))
	}))
	mux.HandleFunc("PUT /api/v4/projects/{project}/merge_requests/{iid}/notes/{id}", gl(func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		reply(w, http.StatusOK, f.save(glKey(r), id, r))
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.EscapedPath())
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *forge) list(key, bodyField, urlField string) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []map[string]any{}
	for id := int64(0); id <= f.nextID; id++ {
		if b, ok := f.bodies[key][id]; ok {
			c := map[string]any{"id": id, bodyField: b}
			if urlField != "" {
				c[urlField] = fmt.Sprintf("https://github.example/%s#issuecomment-%d", key, id)
			}
			out = append(out, c)
		}
	}
	return out
}

func (f *forge) keyOf(id int64) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, m := range f.bodies {
		if _, ok := m[id]; ok {
			return k
		}
	}
	return ""
}

// save creates (id 0) or edits a comment from the request's {"body": ...}.
func (f *forge) save(key string, id int64, r *http.Request) map[string]any {
	var in struct{ Body string }
	_ = json.NewDecoder(r.Body).Decode(&in)
	f.mu.Lock()
	defer f.mu.Unlock()
	if id == 0 {
		f.nextID++
		id = f.nextID
	}
	if f.bodies[key] == nil {
		f.bodies[key] = map[int64]string{}
	}
	f.bodies[key][id] = in.Body
	return map[string]any{"id": id, "body": in.Body, "html_url": fmt.Sprintf("https://github.example/%s#issuecomment-%d", key, id)}
}

func (f *forge) all(key string) map[int64]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int64]string{}
	for k, v := range f.bodies[key] {
		out[k] = v
	}
	return out
}

func (f *forge) requestLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// runComment runs `tandem comment ARGS` in-process with stdin and returns stdout and the error.
func runComment(t *testing.T, output, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newCommentCmd(&globalFlags{output: output}, streams{In: strings.NewReader(stdin), Out: &out, Err: &errOut})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestCommentGitHub(t *testing.T) {
	f, srv := newForge(t)
	t.Setenv("GITHUB_TOKEN", f.githubToken+"\n") // as read from a file
	t.Setenv("GITHUB_API_URL", srv.URL+"/api/v3")
	report := diffview.Marker + "\n### tandem plan for `3f2c1ab` → `9d81e07`\n"

	out, err := runComment(t, "", report, "--github", "acme/shop", "--pr", "7")
	if err != nil {
		t.Fatal(err)
	}
	if want := "created comment 101 on acme/shop#7 (https://github.example/acme/shop#7#issuecomment-101)\n"; out != want {
		t.Errorf("first run printed %q, want %q", out, want)
	}

	file := filepath.Join(t.TempDir(), "plan.md")
	if err := os.WriteFile(file, []byte(report+"second push\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runComment(t, "", "", "--github", "acme/shop", "--pr", "7", "--file", file, "--github-url", srv.URL+"/api/v3/")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "updated comment 101 on acme/shop#7") {
		t.Errorf("second run printed %q, want an update of comment 101", out)
	}
	if diff := cmp.Diff(map[int64]string{101: report + "second push\n"}, f.all("acme/shop#7")); diff != "" {
		t.Errorf("comments on the pull request (-want +got):\n%s", diff)
	}
}

func TestCommentGitLab(t *testing.T) {
	f, srv := newForge(t)
	t.Setenv("GITLAB_TOKEN", f.gitlabToken)
	t.Setenv("CI_SERVER_URL", "")
	report := diffview.Marker + "\nplan\n"
	for i, want := range []string{"created comment 101 on platform/shop!3", "updated comment 101 on platform/shop!3"} {
		out, err := runComment(t, "", report+strconv.Itoa(i), "--gitlab", "platform/shop", "--mr", "3", "--gitlab-url", srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out, want+" ("+srv.URL+"/platform/shop/-/merge_requests/3#note_101)") {
			t.Errorf("run %d printed %q, want %q and the note's URL", i, out, want)
		}
	}
	if diff := cmp.Diff(map[int64]string{101: report + "1"}, f.all("42!3")); diff != "" {
		t.Errorf("notes on the merge request (-want +got):\n%s", diff)
	}
	if got := f.requestLog()[0]; got != "GET /api/v4/projects/platform%2Fshop/merge_requests/3/notes" {
		t.Errorf("first request %q, want the project path escaped", got)
	}
}

func TestCommentJSONOutput(t *testing.T) {
	f, srv := newForge(t)
	t.Setenv("GITHUB_TOKEN", f.githubToken)
	out, err := runComment(t, "json", diffview.Marker+"\nplan\n", "--github", "acme/shop", "--pr", "1", "--github-url", srv.URL+"/api/v3")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	want := map[string]any{"action": "created", "id": float64(101), "url": "https://github.example/acme/shop#1#issuecomment-101"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON output (-want +got):\n%s", diff)
	}
}

func TestCommentMarker(t *testing.T) {
	f, srv := newForge(t)
	t.Setenv("GITHUB_TOKEN", f.githubToken)
	args := []string{"--github", "acme/shop", "--pr", "2", "--github-url", srv.URL + "/api/v3"}

	if _, err := runComment(t, "", "just some text\n", args...); err == nil || !strings.Contains(err.Error(), "has no "+diffview.Marker) {
		t.Errorf("a body without the marker: error %v, want a refusal", err)
	}
	if reqs := f.requestLog(); len(reqs) != 0 {
		t.Errorf("a refused body still made requests: %q", reqs)
	}
	for range 2 {
		if _, err := runComment(t, "", "production plan\n", append(args, "--marker", "tandem:production")...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := runComment(t, "", "staging plan\n", append(args, "--marker", "<!-- tandem:staging -->")...); err != nil {
		t.Fatal(err)
	}
	want := map[int64]string{101: "<!-- tandem:production -->\nproduction plan\n", 102: "<!-- tandem:staging -->\nstaging plan\n"}
	if diff := cmp.Diff(want, f.all("acme/shop#2")); diff != "" {
		t.Errorf("comments (-want +got):\n%s", diff)
	}
}

func TestCommentErrors(t *testing.T) {
	body := diffview.Marker + "\nplan\n"
	tests := []struct {
		name    string
		env     map[string]string
		stdin   string
		args    []string
		wantErr string
	}{
		{name: "no target", stdin: body, wantErr: "say where to comment"},
		{name: "both forges", stdin: body, args: []string{"--github", "a/b", "--pr", "1", "--gitlab", "g/p", "--mr", "1"}, wantErr: "--github and --gitlab exclude each other"},
		{name: "github without pr", stdin: body, args: []string{"--github", "a/b"}, wantErr: "--github needs --pr N"},
		{name: "gitlab with pr", stdin: body, args: []string{"--gitlab", "g/p", "--mr", "2", "--pr", "2"}, wantErr: "--pr and --github-url go with --github"},
		{name: "no github token", env: map[string]string{"GITHUB_TOKEN": ""}, stdin: body, args: []string{"--github", "a/b", "--pr", "1"}, wantErr: "GITHUB_TOKEN is not set"},
		{name: "no gitlab token", env: map[string]string{"GITLAB_TOKEN": " "}, stdin: body, args: []string{"--gitlab", "g/p", "--mr", "1"}, wantErr: "GITLAB_TOKEN is not set"},
		{name: "empty stdin", env: map[string]string{"GITHUB_TOKEN": "x"}, stdin: "\n", args: []string{"--github", "a/b", "--pr", "1"}, wantErr: "comment body from stdin is empty"},
		{name: "missing file", env: map[string]string{"GITHUB_TOKEN": "x"}, args: []string{"--github", "a/b", "--pr", "1", "--file", "/nonexistent/plan.md"}, wantErr: "comment body: open /nonexistent/plan.md"},
		{name: "unknown output", stdin: body, args: []string{"--github", "a/b", "--pr", "1", "-o", "yaml"}, wantErr: `unknown output format "yaml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			output := ""
			args := tt.args
			if len(args) >= 2 && args[len(args)-2] == "-o" {
				output, args = args[len(args)-1], args[:len(args)-2]
			}
			_, err := runComment(t, output, tt.stdin, args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestCommentRejectedTokenStaysSecret(t *testing.T) {
	_, srv := newForge(t)
	const secret = "ghp_NotTheRightOneButSecret"
	t.Setenv("GITHUB_TOKEN", secret)
	_, err := runComment(t, "", diffview.Marker+"\n", "--github", "acme/shop", "--pr", "4", "--github-url", srv.URL+"/api/v3")
	if err == nil {
		t.Fatal("a rejected token did not fail")
	}
	if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "401") {
		t.Errorf("error %q: want the 401, never the token", err)
	}
}

// TestCIExamplesUseRealFlags parses every tandem command line of the CI
// examples with the real command tree, so a renamed flag breaks this test
// rather than someone's pipeline.
func TestCIExamplesUseRealFlags(t *testing.T) {
	s := streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}
	for _, name := range []string{"github-actions.yaml", "gitlab-ci.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", "ci", name))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "\\\n", " ") // shell line continuations
		seen := map[string]bool{}
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimPrefix(strings.TrimSpace(line), "- ")
			if strings.HasPrefix(line, "#") {
				continue
			}
			for _, stage := range strings.FieldsFunc(line, func(r rune) bool { return r == '|' || r == '<' || r == '>' }) {
				words := strings.Fields(stage)
				if len(words) < 2 || words[0] != "tandem" {
					continue
				}
				for i, w := range words {
					words[i] = strings.Trim(w, `"'`)
					if strings.Contains(w, "$") {
						words[i] = "1" // a CI variable: a number or a name, both parse
					}
				}
				root := newRootCmd(s)
				if c, _, _ := root.Find([]string{"comment"}); c == root {
					root.AddCommand(newCommentCmd(&globalFlags{}, s)) // until root.go wires it
				}
				cmd, rest, err := root.Find(words[1:])
				if err != nil || cmd == root {
					t.Errorf("%s: %q: no such command", name, stage)
					continue
				}
				if err := cmd.ParseFlags(rest); err != nil {
					t.Errorf("%s: %q: %v", name, stage, err)
				}
				seen[cmd.Name()] = true
			}
		}
		for _, want := range []string{"diff", "comment", "reconcile"} {
			if !seen[want] {
				t.Errorf("%s never runs tandem %s", name, want)
			}
		}
	}
}
