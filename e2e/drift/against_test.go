package drift

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
)

const marker = "<!-- tandem:report -->"

// TestDiffAgainst checks what `tandem diff --against` says a commit does to
// each cluster, with no cluster reachable: KUBECONFIG names a file that does
// not exist.
func TestDiffAgainst(t *testing.T) {
	tdm := newRunner(t, "")
	tests := []struct {
		name   string
		edit   func(t *testing.T, r *e2etest.ManifestRepo)
		golden string
		// want is "cluster: release change: object change, ..." per changed release.
		want map[string][]string
		// wantLines must be among the diff's changed lines.
		wantLines []string
	}{{
		name: "green only",
		edit: func(t *testing.T, r *e2etest.ManifestRepo) {
			r.Replace(t, "values/example-green.yaml", "greeting: hello from green", "greeting: hello again from green")
		},
		golden: "against-green-only.md.golden",
		want: map[string][]string{
			"blue":  nil,
			"green": {"example changed: Deployment example/example changed"},
		},
		wantLines: []string{"-value: hello from green", "+value: hello again from green"},
	}, {
		name: "storefront only on blue",
		edit: func(t *testing.T, r *e2etest.ManifestRepo) {
			r.Write(t, "values/storefront.yaml", r.Read(t, "values/storefront.yaml")+"greeting: hello from the new shop\n")
		},
		golden: "against-storefront.md.golden",
		want: map[string][]string{
			"blue":  {"storefront changed: ConfigMap shop/storefront-config changed"},
			"green": nil,
		},
		wantLines: []string{"-greeting: hello from the shop", "+greeting: hello from the new shop"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := e2etest.CopyExample(t)
			from := strings.TrimSpace(repo.Git(t, "rev-parse", "HEAD"))
			tc.edit(t, repo)
			to := repo.Commit(t, tc.name)
			args := []string{"diff", "--manifest-dir", repo.Dir, "--against", "HEAD~1"}

			res := tdm.run(t, diffTimeout, append(args, "-o", "json")...)
			wantCode(t, res, 0) // differences alone are no error without --exit-code
			var rep diffReport
			res.JSON(t, &rep)
			if rep.Mode != "against" || rep.From != from || rep.To != to {
				t.Errorf("want mode against from %s to %s, got %q %s → %s", from, to, rep.Mode, rep.From, rep.To)
			}
			if len(rep.Clusters) != 2 || rep.Clusters[0].Name != "blue" || rep.Clusters[0].Role != "active" {
				t.Fatalf("want blue (active) first of two clusters, got %+v", rep.Clusters)
			}
			got := map[string][]string{}
			var lines []string
			for _, c := range rep.Clusters {
				if c.Error != "" {
					t.Errorf("cluster %s: %s", c.Name, c.Error)
				}
				got[c.Name] = c.changedNames()
				for _, r := range c.changed() {
					for _, o := range r.Objects {
						removed, added := diffMarks(o.Diff)
						for _, l := range removed {
							lines = append(lines, "-"+strings.TrimSpace(l))
						}
						for _, l := range added {
							lines = append(lines, "+"+strings.TrimSpace(l))
						}
					}
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("changed releases per cluster (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantLines, lines); d != "" {
				t.Errorf("changed lines (-want +got):\n%s", d)
			}
			// green runs only what its releases: list names; storefront never shows there.
			var greens []string
			for _, r := range rep.cluster(t, "green").Releases {
				greens = append(greens, r.Name)
			}
			if d := cmp.Diff([]string{"example", "platform"}, sorted(greens)); d != "" {
				t.Errorf("green's releases (-want +got):\n%s", d)
			}

			wantCode(t, tdm.run(t, diffTimeout, append(args, "--exit-code")...), 2)

			res = tdm.run(t, diffTimeout, append(args, "-o", "markdown")...)
			wantCode(t, res, 0)
			md := res.Stdout
			if !strings.HasPrefix(md, marker+"\n") {
				t.Errorf("the comment does not start with %s:\n%s", marker, md)
			}
			if rows := tableRows(md); len(rows) != 2 || !strings.HasPrefix(rows[0], "| blue | active |") || !strings.HasPrefix(rows[1], "| green | standby |") {
				t.Errorf("want the Active cluster's row first, then green's; got %q", rows)
			}
			heading := fmt.Sprintf("### tandem plan for `%s` → `%s`", from[:7], to[:7])
			if !strings.Contains(md, heading+"\n") {
				t.Errorf("no heading %q in\n%s", heading, md)
			}
			if open := unclosedFence(md); open != "" {
				t.Errorf("fence %q is never closed", open)
			}
			checkGolden(t, tc.golden, normaliseHeading(md))
		})
	}
}

// TestDiffAgainstHuge makes a change whose diff is far larger than a GitHub
// comment and checks that the Markdown report still fits, with its fences
// closed and a note saying what was cut.
func TestDiffAgainstHuge(t *testing.T) {
	tdm := newRunner(t, "")
	repo := e2etest.CopyExample(t)
	repo.Write(t, "charts/bulk/Chart.yaml", "apiVersion: v2\nname: bulk\nversion: 0.1.0\n")
	repo.Write(t, "charts/bulk/values.yaml", "lines: 3\ntext: a line of generated configuration\n")
	// One key per line; every 97th value holds a run of backticks, which must not
	// close the report's code fence.
	repo.Write(t, "charts/bulk/templates/configmap.yaml", `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-data
data:
{{- range $i := until (int .Values.lines) }}
  key-{{ printf "%05d" $i }}: {{ printf "%s %d%s" $.Values.text $i (ternary " `+"```"+`" "" (eq (mod $i 97) 0)) | quote }}
{{- end }}
`)
	repo.Write(t, "values/bulk.yaml", "lines: 3\n")
	repo.Replace(t, "tandem.yaml", "  - name: orders-worker\n", `  - name: bulk
    namespace: bulk
    chart: ./charts/bulk
    values: [values/bulk.yaml]

  - name: orders-worker
`)
	repo.Commit(t, "bulk: a small ConfigMap on blue")
	// Thousands of lines, on blue and (newly enabled there) on green.
	repo.Write(t, "values/bulk.yaml", "lines: 6000\n")
	repo.Replace(t, "tandem.yaml", "releases: [platform, example]", "releases: [platform, example, bulk]")
	repo.Commit(t, "bulk: 6000 lines everywhere")

	args := []string{"diff", "--manifest-dir", repo.Dir, "--against", "HEAD~1"}
	var rep diffReport
	res := tdm.run(t, diffTimeout, append(args, "-o", "json")...)
	wantCode(t, res, 0)
	res.JSON(t, &rep)
	size := 0
	for _, c := range rep.Clusters {
		for _, r := range c.changed() {
			for _, o := range r.Objects {
				size += len(o.Diff)
			}
		}
	}
	if size < 4*65536 {
		t.Fatalf("the change's diff is only %d bytes; the test needs one far over the limit", size)
	}

	res = tdm.run(t, diffTimeout, append(args, "-o", "markdown")...)
	wantCode(t, res, 0)
	md := res.Stdout
	t.Logf("diff of %d bytes, comment of %d bytes (%d characters)", size, len(md), utf8.RuneCountInString(md))
	if n := utf8.RuneCountInString(md); n >= 65536 || len(md) >= 65536 {
		t.Errorf("the comment has %d characters (%d bytes), want under 65,536", n, len(md))
	}
	if !strings.HasPrefix(md, marker+"\n") {
		t.Errorf("the comment does not start with %s", marker)
	}
	if open := unclosedFence(md); open != "" {
		t.Errorf("fence %q is never closed", open)
	}
	if o, c := strings.Count(md, "<details>"), strings.Count(md, "</details>"); o != c || o == 0 {
		t.Errorf("%d <details> and %d </details>", o, c)
	}
	if !regexp.MustCompile("_… [0-9,]+ more lines of this release's diff not shown; run `tandem diff` locally for all of it._").MatchString(md) {
		t.Errorf("no note saying how much of the release's diff was cut")
	}
	if !strings.Contains(md, "**Not shown**") || !strings.Contains(md, "<b>green</b> · bulk") {
		t.Errorf("green's bulk release should be listed under Not shown")
	}
	if rows := tableRows(md); len(rows) != 2 || !strings.HasPrefix(rows[0], "| blue | active |") {
		t.Errorf("want the Active cluster's row first, got %q", rows)
	}
	if t.Failed() {
		t.Logf("the comment's last 3000 bytes:\n%s", md[max(0, len(md)-3000):])
	}
}

// TestCommentSticky posts two reports to a pull request on a small in-memory
// GitHub and checks that the second edits the first: one tandem comment,
// holding the second body, and other comments left alone.
func TestCommentSticky(t *testing.T) {
	gh := newFakeGitHub(t, "o", "r", 1, "test-token-Zx81")
	gh.add("someone", "LGTM, but see the plan below")
	tdm := newRunner(t, "")

	repo := e2etest.CopyExample(t)
	repo.Replace(t, "values/example-green.yaml", "greeting: hello from green", "greeting: first push")
	repo.Commit(t, "first push")
	first := markdownAgainst(t, tdm, repo)
	repo.Replace(t, "values/example-green.yaml", "greeting: first push", "greeting: second push")
	repo.Commit(t, "second push")
	second := markdownAgainst(t, tdm, repo)
	if first == second {
		t.Fatal("the two reports are the same; the test needs two different bodies")
	}

	post := tdm.with("GITHUB_TOKEN=test-token-Zx81")
	for i, body := range []string{first, second} {
		file := filepath.Join(t.TempDir(), "comment.md")
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		res := post.run(t, diffTimeout, "comment", "--github", "o/r", "--pr", "1", "--github-url", gh.srv.URL, "--file", file)
		wantCode(t, res, 0)
		if strings.Contains(res.Stdout+res.Stderr, "test-token-Zx81") {
			t.Errorf("run %d printed the token", i+1)
		}
		wantWord := []string{"created", "updated"}[i]
		if !strings.HasPrefix(res.Stdout, wantWord+" comment ") {
			t.Errorf("run %d: want %q …, got %q", i+1, wantWord, res.Stdout)
		}
	}

	comments := gh.list()
	var ours []fakeComment
	for _, c := range comments {
		if strings.Contains(c.Body, marker) {
			ours = append(ours, c)
		}
	}
	if len(comments) != 2 || len(ours) != 1 {
		t.Fatalf("want the reviewer's comment and one tandem comment, got %d comments, %d of them tandem's", len(comments), len(ours))
	}
	if ours[0].Body != second {
		t.Errorf("the tandem comment does not hold the second report (-want +got):\n%s", cmp.Diff(second, ours[0].Body))
	}
	if comments[0].Body != "LGTM, but see the plan below" {
		t.Errorf("the reviewer's comment was changed: %q", comments[0].Body)
	}
	if got := gh.calls(); got["POST"] != 1 || got["PATCH"] != 1 {
		t.Errorf("want one create and one edit, got %v", got)
	}
}

func markdownAgainst(t *testing.T, tdm runner, repo *e2etest.ManifestRepo) string {
	t.Helper()
	res := tdm.run(t, diffTimeout, "diff", "--manifest-dir", repo.Dir, "--against", "HEAD~1", "-o", "markdown")
	wantCode(t, res, 0)
	return res.Stdout
}

// tableRows returns the summary table's data rows.
func tableRows(md string) []string {
	var rows []string
	header := false
	for _, l := range strings.Split(md, "\n") {
		switch {
		case strings.HasPrefix(l, "| cluster |"):
			header = true
		case header && strings.HasPrefix(l, "|---"):
		case header && strings.HasPrefix(l, "|"):
			rows = append(rows, l)
		case header:
			return rows
		}
	}
	return rows
}

var planHeading = regexp.MustCompile("(?m)^### tandem plan for `[0-9a-f]{7}` → `[0-9a-f]{7}`$")

// normaliseHeading replaces the commit SHAs of the heading, which change with
// every run, by placeholders.
func normaliseHeading(md string) string {
	return planHeading.ReplaceAllString(md, "### tandem plan for `FROM` → `TO`")
}

// checkGolden compares got with testdata/name, or rewrites it under -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./e2e/drift/ -run %s -update to create it)", err, t.Name())
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s differs (-want +got); run with -update if the change is intended:\n%s", path, d)
	}
}

// fakeGitHub implements the three REST endpoints tandem's sticky comment uses
// for one pull request: list, create and edit issue comments, in memory.
type fakeGitHub struct {
	srv         *httptest.Server
	owner, repo string
	pr          int
	token       string

	mu       sync.Mutex // guards the fields below
	comments []fakeComment
	nextID   int64
	counts   map[string]int
}

type fakeComment struct {
	ID      int64     `json:"id"`
	Body    string    `json:"body"`
	User    fakeLogin `json:"user"`
	HTMLURL string    `json:"html_url"`
}

type fakeLogin struct {
	Login string `json:"login"`
}

func newFakeGitHub(t *testing.T, owner, repo string, pr int, token string) *fakeGitHub {
	g := &fakeGitHub{owner: owner, repo: repo, pr: pr, token: token, nextID: 1000, counts: map[string]int{}}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGitHub) add(user, body string) fakeComment {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nextID++
	c := fakeComment{ID: g.nextID, Body: body, User: fakeLogin{Login: user}, HTMLURL: fmt.Sprintf("https://github.example/%s/%s/pull/%d#issuecomment-%d", g.owner, g.repo, g.pr, g.nextID)}
	g.comments = append(g.comments, c)
	return c
}

func (g *fakeGitHub) list() []fakeComment {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]fakeComment(nil), g.comments...)
}

func (g *fakeGitHub) calls() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for k, v := range g.counts {
		out[k] = v
	}
	return out
}

func (g *fakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+g.token {
		http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
		return
	}
	g.mu.Lock()
	g.counts[r.Method]++
	g.mu.Unlock()
	if r.Method == http.MethodGet && r.URL.Path == "/user" {
		// The token's own identity: tandem edits only its own comments.
		writeJSON(w, http.StatusOK, fakeLogin{Login: "tandem-bot"})
		return
	}
	prefix := "/repos/" + g.owner + "/" + g.repo + "/issues/"
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	issueComments := strconv.Itoa(g.pr) + "/comments"
	switch {
	case r.Method == http.MethodGet && rest == issueComments:
		writeJSON(w, http.StatusOK, g.list())
	case r.Method == http.MethodPost && rest == issueComments:
		body, ok := readBody(w, r)
		if ok {
			writeJSON(w, http.StatusCreated, g.add("tandem-bot", body))
		}
	case r.Method == http.MethodPatch && strings.HasPrefix(rest, "comments/"):
		id, err := strconv.ParseInt(strings.TrimPrefix(rest, "comments/"), 10, 64)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		for i := range g.comments {
			if g.comments[i].ID == id {
				g.comments[i].Body = body
				writeJSON(w, http.StatusOK, g.comments[i])
				return
			}
		}
		http.NotFound(w, r)
	default:
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
	}
}

func readBody(w http.ResponseWriter, r *http.Request) (string, bool) {
	var in struct {
		Body string `json:"body"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Body == "" {
		http.Error(w, `{"message":"Invalid request: body is required"}`, http.StatusUnprocessableEntity)
		return "", false
	}
	return in.Body, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
