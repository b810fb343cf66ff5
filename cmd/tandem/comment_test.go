package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/cmd/tandem/internal/diffview"
	"github.com/tandem-gitops/tandem/comment"
)

// forge is a small GitHub and GitLab in one: the issue-comment and
// merge-request-note endpoints `tandem comment` calls, with their auth headers
// and in-memory comments (one page; the comment package's tests cover pagination).
type forge struct {
	githubToken, gitlabToken string

	mu       sync.Mutex
	nextID   int64
	bodies   map[string]map[int64]string // "acme/shop#7" or "42!3" -> id -> body
	authors  map[int64]string            // id -> the login that wrote it
	requests []string
	// appToken makes GitHub's GET /user answer 403, as for an App installation token.
	appToken bool
	// readOnly makes every write answer 403, as for a token that may read comments only.
	readOnly bool
}

// The forge's tokens write as these users.
const (
	forgeGitHubUser = "tandem-bot"
	forgeGitLabUser = "project_42_bot"
)

func newForge(t *testing.T) (*forge, *httptest.Server) {
	t.Helper()
	f := &forge{githubToken: "ghp_cmdtest", gitlabToken: "glpat-cmdtest", nextID: 100, bodies: map[string]map[int64]string{}, authors: map[int64]string{}}
	mux := http.NewServeMux()
	gh := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+f.githubToken || r.Header.Get("X-GitHub-Api-Version") != "2022-11-28" {
				reply(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials"})
				return
			}
			if r.PathValue("repo") == "hidden" { // a private repository the token cannot see
				reply(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
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
	mux.HandleFunc("GET /api/v3/user", gh(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		app := f.appToken
		f.mu.Unlock()
		if app {
			reply(w, http.StatusForbidden, map[string]string{"message": "Resource not accessible by integration"})
			return
		}
		reply(w, http.StatusOK, map[string]any{"login": forgeGitHubUser, "id": 7})
	}))
	mux.HandleFunc("GET /api/v4/user", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("PRIVATE-TOKEN") != f.gitlabToken {
			reply(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
			return
		}
		reply(w, http.StatusOK, map[string]any{"username": forgeGitLabUser, "id": 91})
	})
	mux.HandleFunc("GET /api/v3/repos/{owner}/{repo}/issues/{n}/comments", gh(func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, f.list(ghKey(r), "body", "html_url", "user", "login"))
	}))
	mux.HandleFunc("POST /api/v3/repos/{owner}/{repo}/issues/{n}/comments", gh(func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusCreated, f.save(ghKey(r), 0, r, forgeGitHubUser))
	}))
	mux.HandleFunc("PATCH /api/v3/repos/{owner}/{repo}/issues/comments/{id}", gh(func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		reply(w, http.StatusOK, f.save(f.keyOf(id), id, r, ""))
	}))
	mux.HandleFunc("GET /api/v4/projects/{project}/merge_requests/{iid}/notes", gl(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Next-Page", "")
		reply(w, http.StatusOK, f.list(glKey(r), "body", "", "author", "username"))
	}))
	mux.HandleFunc("POST /api/v4/projects/{project}/merge_requests/{iid}/notes", gl(func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusCreated, f.save(glKey(r), 0, r, forgeGitLabUser))
	}))
	mux.HandleFunc("PUT /api/v4/projects/{project}/merge_requests/{iid}/notes/{id}", gl(func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		reply(w, http.StatusOK, f.save(glKey(r), id, r, ""))
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.EscapedPath())
		readOnly := f.readOnly
		f.mu.Unlock()
		if readOnly && r.Method != http.MethodGet && !strings.HasSuffix(r.URL.Path, "/graphql") {
			if strings.HasPrefix(r.URL.Path, "/api/v4/") {
				reply(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the access token."})
			} else {
				reply(w, http.StatusForbidden, map[string]string{"message": "Resource not accessible by integration"})
			}
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *forge) list(key, bodyField, urlField, authorField, loginField string) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []map[string]any{}
	for id := int64(0); id <= f.nextID; id++ {
		if b, ok := f.bodies[key][id]; ok {
			c := map[string]any{"id": id, bodyField: b, authorField: map[string]any{loginField: f.authors[id]}}
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

// save creates (id 0, written by author) or edits a comment from the request's {"body": ...}.
func (f *forge) save(key string, id int64, r *http.Request, author string) map[string]any {
	var in struct{ Body string }
	_ = json.NewDecoder(r.Body).Decode(&in)
	f.mu.Lock()
	defer f.mu.Unlock()
	if id == 0 {
		f.nextID++
		id = f.nextID
		f.authors[id] = author
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
	if want := "created comment 101 on acme/shop#7 as tandem-bot (https://github.example/acme/shop#7#issuecomment-101)\n"; out != want {
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
	for i, want := range []string{"created comment 101 on platform/shop!3 as project_42_bot", "updated comment 101 on platform/shop!3 as project_42_bot"} {
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
	if got := f.requestLog()[1]; got != "GET /api/v4/projects/platform%2Fshop/merge_requests/3/notes" {
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
	want := map[string]any{"action": "created", "id": float64(101), "url": "https://github.example/acme/shop#1#issuecomment-101", "author": "tandem-bot"}
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
				for len(words) > 0 && slices.Contains([]string{"if", "!", "elif", "then", "else", "do"}, words[0]) {
					words = words[1:] // shell keywords before a command
				}
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
		want := []string{"diff", "comment", "reconcile"}
		if name == "github-actions.yaml" {
			want = append(want, "status") // the plan at the approval gate reads what the clusters applied
		}
		for _, want := range want {
			if !seen[want] {
				t.Errorf("%s never runs tandem %s", name, want)
			}
		}
	}
}

// plant writes a comment by someone else, the way anyone who can comment on a
// pull request can, and returns its id.
func (f *forge) plant(key, author, body string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	if f.bodies[key] == nil {
		f.bodies[key] = map[int64]string{}
	}
	f.bodies[key][f.nextID] = body
	f.authors[f.nextID] = author
	return f.nextID
}

// TestCommentPlanFailedReplacesThePlan covers issue 11 item 2: when the plan
// for a push could not be made, the plan of an earlier push must not stay on
// the pull request looking current. `tandem comment --plan-failed` replaces it
// with a notice, the report the failed diff wrote if it is one, and nothing else.
func TestCommentPlanFailedReplacesThePlan(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	partial := diffview.Marker + "\n### tandem plan for `3f2c1ab` → `9d81e07`\n\n> **⚠ green** (standby) could not be diffed: `render: release \"web\": template: web/templates/x.yaml:3: nil pointer`\n"
	const oldPlan = "**web** image 1.2 → 1.3"
	notice := []string{"### ⚠ tandem plan failed for `9d81e07`", "No plan could be made for this push", "<https://github.example/acme/shop/actions/runs/4242>"}
	tests := []struct {
		name    string
		file    string
		wantHas []string
		wantNot []string
	}{
		{name: "the diff wrote nothing", file: write("empty.md", ""), wantHas: notice, wantNot: []string{oldPlan, "What the failed run reported"}},
		{name: "the diff never ran", file: filepath.Join(dir, "missing.md"), wantHas: notice, wantNot: []string{oldPlan}},
		{name: "a partial report", file: write("partial.md", partial), wantHas: append(notice, "What the failed run reported", "could not be diffed: `render: release"), wantNot: []string{oldPlan}},
		{name: "not a report", file: write("stderr.txt", "Error: GET https://x-access-token:ghp_cmdtest@github.com: 403\n"), wantHas: notice, wantNot: []string{oldPlan, "x-access-token", "What the failed run reported"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newForge(t)
			t.Setenv("GITHUB_TOKEN", f.githubToken)
			t.Setenv("GITHUB_SERVER_URL", "https://github.example")
			t.Setenv("GITHUB_REPOSITORY", "acme/shop")
			t.Setenv("GITHUB_RUN_ID", "4242")
			t.Setenv("GITHUB_SHA", "9d81e07aabbccddeeff00112233445566778899a")
			args := []string{"--github", "acme/shop", "--pr", "7", "--github-url", srv.URL + "/api/v3"}
			if _, err := runComment(t, "", diffview.Marker+"\n### tandem plan\n\n"+oldPlan+"\n", args...); err != nil {
				t.Fatal(err)
			}
			out, err := runComment(t, "", "", append(args, "--plan-failed", "--file", tt.file)...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(out, "updated comment 101 on acme/shop#7") {
				t.Errorf("printed %q, want comment 101 updated", out)
			}
			all := f.all("acme/shop#7")
			if len(all) != 1 {
				t.Fatalf("comments = %v, want the one sticky comment", all)
			}
			body := all[101]
			if !strings.HasPrefix(body, diffview.Marker+"\n") || strings.Count(body, diffview.Marker) != 1 {
				t.Errorf("body does not start with the marker exactly once:\n%s", body)
			}
			for _, w := range tt.wantHas {
				if !strings.Contains(body, w) {
					t.Errorf("body does not say %q:\n%s", w, body)
				}
			}
			for _, w := range append(tt.wantNot, f.githubToken) {
				if strings.Contains(body, w) {
					t.Errorf("body holds %q:\n%s", w, body)
				}
			}
		})
	}
}

func TestCommentPlanFailedGitLab(t *testing.T) {
	f, srv := newForge(t)
	t.Setenv("GITLAB_TOKEN", f.gitlabToken)
	t.Setenv("CI_JOB_URL", "https://gitlab.example/platform/shop/-/jobs/77")
	t.Setenv("CI_COMMIT_SHA", "")
	args := []string{"--gitlab", "platform/shop", "--mr", "3", "--gitlab-url", srv.URL}
	if _, err := runComment(t, "", diffview.Marker+"\nold plan\n", args...); err != nil {
		t.Fatal(err)
	}
	if _, err := runComment(t, "", "", append(args, "--plan-failed")...); err != nil {
		t.Fatal(err)
	}
	body := f.all("42!3")[101]
	for _, w := range []string{"### ⚠ tandem plan failed\n", "<https://gitlab.example/platform/shop/-/jobs/77>"} {
		if !strings.Contains(body, w) {
			t.Errorf("body does not say %q:\n%s", w, body)
		}
	}
	if strings.Contains(body, "old plan") {
		t.Errorf("the old plan survived:\n%s", body)
	}
}

// TestCommentPlantedMarkerIgnored: a comment by someone else holding the
// marker is left alone; tandem writes its own.
func TestCommentPlantedMarkerIgnored(t *testing.T) {
	f, srv := newForge(t)
	t.Setenv("GITHUB_TOKEN", f.githubToken)
	planted := diffview.Marker + "\n### tandem plan\n\n**No changes**\n"
	id := f.plant("acme/shop#7", "mallory", planted)
	out, err := runComment(t, "", diffview.Marker+"\nreal plan\n", "--github", "acme/shop", "--pr", "7", "--github-url", srv.URL+"/api/v3")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "created comment 102 on acme/shop#7 as tandem-bot") {
		t.Errorf("printed %q, want a comment of tandem's own created", out)
	}
	if diff := cmp.Diff(map[int64]string{id: planted, 102: diffview.Marker + "\nreal plan\n"}, f.all("acme/shop#7")); diff != "" {
		t.Errorf("comments (-want +got):\n%s", diff)
	}
}

// TestCommentAuthorFlag: when the API will not say whose token it is, the
// error says to name the author, and --author does.
func TestCommentAuthorFlag(t *testing.T) {
	f, srv := newForge(t)
	f.appToken = true // GET /user answers 403 and this forge has no GraphQL
	t.Setenv("GITHUB_TOKEN", f.githubToken)
	args := []string{"--github", "acme/shop", "--pr", "7", "--github-url", srv.URL + "/api/v3"}
	f.plant("acme/shop#7", "mallory", diffview.Marker+"\nplanted\n")
	_, err := runComment(t, "", diffview.Marker+"\nplan\n", args...)
	if err == nil || !strings.Contains(err.Error(), "cannot tell whose comments are tandem's") || !strings.Contains(err.Error(), "--author: github-actions[bot]") {
		t.Fatalf("error = %v, want one that asks for --author", err)
	}
	if strings.Contains(err.Error(), f.githubToken) {
		t.Errorf("error holds the token: %v", err)
	}
	for range 2 {
		if _, err := runComment(t, "", diffview.Marker+"\nplan\n", append(args, "--author", forgeGitHubUser)...); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(map[int64]string{101: diffview.Marker + "\nplanted\n", 102: diffview.Marker + "\nplan\n"}, f.all("acme/shop#7")); diff != "" {
		t.Errorf("comments (-want +got):\n%s", diff)
	}
}

func TestCommentPlanFailedFlags(t *testing.T) {
	t.Setenv("GITHUB_TOKEN", "x")
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{name: "details without plan-failed", args: []string{"--details-url", "https://ci.example/1"}, wantErr: "--details-url goes with --plan-failed"},
		{name: "details not http", args: []string{"--plan-failed", "--details-url", "javascript:alert(1)"}, wantErr: `--details-url "javascript:alert(1)": want an http(s) URL`},
		{name: "details with credentials", args: []string{"--plan-failed", "--details-url", "https://ci:s3cr3t-pass@ci.example/1"}, wantErr: `--details-url "https://ci:xxxxx@ci.example/1": holds credentials`},
		{name: "job URL with credentials", env: map[string]string{"CI_JOB_URL": "https://oauth2:glpat-s3cr3t@gitlab.example/a/b/-/jobs/1"}, args: []string{"--plan-failed"}, wantErr: "$CI_JOB_URL \"https://oauth2:xxxxx@gitlab.example/a/b/-/jobs/1\": holds credentials"},
		{name: "bad run URL from env", env: map[string]string{"GITHUB_SERVER_URL": "https://github.example", "GITHUB_REPOSITORY": "a/b> <img", "GITHUB_RUN_ID": "1"}, args: []string{"--plan-failed"}, wantErr: "$GITHUB_SERVER_URL, $GITHUB_REPOSITORY and $GITHUB_RUN_ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			where := []string{"--github", "a/b", "--pr", "1"}
			if _, ok := tt.env["CI_JOB_URL"]; ok {
				t.Setenv("GITLAB_TOKEN", "x")
				where = []string{"--gitlab", "a/b", "--mr", "1"}
			}
			_, err := runComment(t, "", "", append(where, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error holds the URL's password: %v", err)
			}
		})
	}
}

// TestCommentTokenProblemsSayWhatToDo: the answers an on-call engineer meets
// when the comment step fails at 3 a.m. say what to do. A rejected token is
// not "pass --author" (the identity lookup is merely where it failed first);
// a token that may not write says which permission it lacks; neither holds the token.
func TestCommentTokenProblemsSayWhatToDo(t *testing.T) {
	body := diffview.Marker + "\nplan\n"
	tests := []struct {
		name          string
		readOnly      bool
		env           map[string]string
		args          []string
		want, notWant []string
	}{
		{name: "github, rejected token", env: map[string]string{"GITHUB_TOKEN": "ghp_expired"}, args: []string{"--github", "acme/shop", "--pr", "7"},
			want: []string{"401", "GITHUB_TOKEN was rejected", "--author does not help"}, notWant: []string{"pass --author", "ghp_expired"}},
		{name: "gitlab, rejected token", env: map[string]string{"GITLAB_TOKEN": "glpat-expired"}, args: []string{"--gitlab", "42", "--mr", "3"},
			want: []string{"401", "GITLAB_TOKEN was rejected"}, notWant: []string{"pass --author", "glpat-expired"}},
		{name: "github, read-only token", readOnly: true, env: map[string]string{"GITHUB_TOKEN": "ghp_cmdtest"}, args: []string{"--github", "acme/shop", "--pr", "7"},
			want: []string{"403", "Resource not accessible by integration", "permissions: pull-requests: write"}, notWant: []string{"pass --author"}},
		{name: "gitlab, token without the api scope", readOnly: true, env: map[string]string{"GITLAB_TOKEN": "glpat-cmdtest"}, args: []string{"--gitlab", "42", "--mr", "3"},
			want: []string{"403", "higher privileges", "needs the api scope"}, notWant: []string{"pass --author"}},
		{name: "github, repository the token cannot see", env: map[string]string{"GITHUB_TOKEN": "ghp_cmdtest"}, args: []string{"--github", "acme/hidden", "--pr", "7"},
			want: []string{"404", "cannot see"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newForge(t)
			f.readOnly = tt.readOnly
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			if args[0] == "--github" {
				args = append(args, "--github-url", srv.URL+"/api/v3")
			} else {
				args = append(args, "--gitlab-url", srv.URL)
			}
			_, err := runComment(t, "", body, args...)
			if err == nil {
				t.Fatal("comment succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error says %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestCommentHintOnlyWhereItHelps: an identity lookup that failed because the
// API was down or busy does not send the on-call engineer to --author; one
// the API answered without an identity does.
func TestCommentHintOnlyWhereItHelps(t *testing.T) {
	down := &comment.AuthorError{Noun: "comment", Err: &comment.ConnError{Err: errors.New(`Get "https://api.github.com/user": connection refused`), Attempts: 4}}
	busy := &comment.AuthorError{Noun: "comment", Err: &comment.APIError{Method: "GET", URL: "https://api.github.com/user", StatusCode: 503, Attempts: 4}}
	unknown := &comment.AuthorError{Noun: "comment", Err: errors.New("POST https://api.github.com/graphql: viewer: Resource not accessible by integration")}
	for _, err := range []error{down, busy} {
		if got := commentHint(err, githubHints).Error(); strings.Contains(got, "pass --author") {
			t.Errorf("hint for %v: %q, want no --author hint", err, got)
		}
	}
	if got := commentHint(unknown, githubHints).Error(); !strings.Contains(got, "pass --author") {
		t.Errorf("hint for an unknown identity: %q, want the --author hint", got)
	}
}
