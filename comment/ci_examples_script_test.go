package comment

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestCIExamplesCommentScriptNeverLeavesAStalePlan runs the comment job's
// script of each example with bash, a stand-in `tandem` that records its
// arguments, and the files the plan job may or may not have left. A plan job
// that succeeded but whose plan file did not arrive (the artifact download
// failed; the GitHub step goes on past that) must replace the previous plan
// with the "plan failed" notice: a `tandem comment --file plan.md` that fails
// on the missing file leaves the plan of an earlier push up, looking current.
// Nor may files an earlier pipeline left in a reused job directory pass for
// this pipeline's plan.
func TestCIExamplesCommentScriptNeverLeavesAStalePlan(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	gh, _ := readExample(t, "github-actions.yaml")
	var ghScript string
	for _, s := range ghSteps(gh["jobs"].(map[string]any)["comment"].(map[string]any)) {
		if strings.Contains(s.run, "tandem comment") {
			ghScript = s.run
		}
	}
	gl, _ := readExample(t, "gitlab-ci.yaml")
	var glScript strings.Builder
	for _, l := range toSlice(gl["tandem-comment"].(map[string]any)["script"]) {
		glScript.WriteString(toString(l) + "\n")
	}
	if ghScript == "" || glScript.Len() == 0 {
		t.Fatal("no comment script found in the examples")
	}

	const plan = "<!-- tandem:report -->\n### tandem plan\n"
	tests := []struct {
		name   string
		script string
		env    []string
		files  map[string]string
		// failed: the script must call --plan-failed.
		failed bool
		// noFile: the script must not pass the plan file (it is not this pipeline's).
		noFile bool
	}{
		{name: "github, plan succeeded", script: ghScript, env: []string{"PLAN_RESULT=success"}, files: map[string]string{"tmp/tandem-plan/plan.md": plan}},
		{name: "github, plan succeeded, plan file missing", script: ghScript, env: []string{"PLAN_RESULT=success"}, failed: true},
		{name: "github, plan succeeded, plan file empty", script: ghScript, env: []string{"PLAN_RESULT=success"}, files: map[string]string{"tmp/tandem-plan/plan.md": ""}, failed: true},
		{name: "github, plan failed", script: ghScript, env: []string{"PLAN_RESULT=failure"}, files: map[string]string{"tmp/tandem-plan/plan.md": plan}, failed: true},
		// A self-hosted runner keeps the workspace of earlier runs; this job checks nothing out.
		{name: "github, self-hosted, an earlier run's plan in the workspace", script: ghScript, env: []string{"PLAN_RESULT=success"}, files: map[string]string{"work/plan.md": plan}, failed: true},
		{name: "gitlab, plan succeeded", script: glScript.String(), files: map[string]string{"work/plan.md": plan, "work/plan.id": "9\n", "work/plan.ok": "9\n"}},
		{name: "gitlab, plan failed", script: glScript.String(), files: map[string]string{"work/plan.md": plan, "work/plan.id": "9\n"}, failed: true},
		{name: "gitlab, plan.ok without a plan", script: glScript.String(), files: map[string]string{"work/plan.id": "9\n", "work/plan.ok": "9\n"}, failed: true},
		// GIT_STRATEGY none reuses the job directory of earlier jobs on the
		// runner (shell executor, docker's builds volume): the files an
		// earlier pipeline's comment job downloaded, of another merge request
		// maybe, are still there when this pipeline's plan left none.
		{name: "gitlab, plan failed early, an earlier pipeline's files left", script: glScript.String(), files: map[string]string{"work/plan.md": "<!-- tandem:report -->\nanother merge request's plan\n", "work/plan.id": "8\n", "work/plan.ok": "8\n"}, failed: true, noFile: true},
		{name: "gitlab, plan failed, an earlier pipeline's plan.ok left", script: glScript.String(), files: map[string]string{"work/plan.md": plan, "work/plan.id": "9\n", "work/plan.ok": "8\n"}, failed: true},
		{name: "gitlab, files of the old example left", script: glScript.String(), files: map[string]string{"work/plan.md": plan, "work/plan.ok": ""}, failed: true, noFile: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// root/work is the job's working directory, root/tmp its RUNNER_TEMP.
			root, bin := t.TempDir(), t.TempDir()
			args := filepath.Join(bin, "args")
			stub := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + args + "\n"
			if err := os.WriteFile(filepath.Join(bin, "tandem"), []byte(stub), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{"work", "tmp/tandem-plan"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for name, body := range tt.files {
				if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(bash, "-e", "-c", tt.script)
			cmd.Dir = filepath.Join(root, "work")
			cmd.Env = append([]string{"PATH=" + bin + ":/usr/bin:/bin", "RUNNER_TEMP=" + filepath.Join(root, "tmp"), "GITHUB_REPOSITORY=acme/shop", "PR_NUMBER=7",
				"CI_PROJECT_PATH=acme/shop", "CI_MERGE_REQUEST_IID=3", "CI_PIPELINE_ID=9", "CI_PIPELINE_URL=https://gitlab.example/acme/shop/-/pipelines/9"}, tt.env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("script failed: %v\n%s", err, out)
			}
			got, err := os.ReadFile(args)
			if err != nil {
				t.Fatalf("the script never ran tandem: %v", err)
			}
			calls := strings.Split(strings.TrimSpace(string(got)), "\n")
			if len(calls) != 1 || !strings.HasPrefix(calls[0], "comment ") {
				t.Fatalf("tandem calls = %q, want one tandem comment", calls)
			}
			if has := strings.Contains(calls[0], "--plan-failed"); has != tt.failed {
				t.Errorf("tandem %s: --plan-failed is %v, want %v", calls[0], has, tt.failed)
			}
			if has := strings.Contains(calls[0], "--file "); has == tt.noFile {
				t.Errorf("tandem %s: passes the plan file: %v, want %v", calls[0], has, !tt.noFile)
			}
		})
	}
}

// TestCIExampleDriftIssueScript runs the drift job's issue step with bash and
// a stand-in `gh`: drift opens one issue, or edits the open one; no drift
// closes it; an error (exit 1 never reaches this step) or no drift without
// an issue does nothing. Never two issues.
func TestCIExampleDriftIssueScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	gh, _ := readExample(t, "github-actions.yaml")
	var script string
	for _, s := range ghSteps(gh["jobs"].(map[string]any)["drift"].(map[string]any)) {
		if strings.Contains(s.run, "gh issue") {
			script = s.run
		}
	}
	if script == "" {
		t.Fatal("no drift issue script in the example")
	}
	for _, tt := range []struct {
		name, code, open string
		want             string // the gh call that changes something, "" for none
	}{
		{name: "drift, no issue", code: "2", want: "issue create --repo o/r --label tandem-drift"},
		{name: "drift, an open issue", code: "2", open: "7", want: "issue edit 7 --repo o/r --body-file"},
		{name: "no drift, an open issue", code: "0", open: "7", want: "issue close 7 --repo o/r"},
		{name: "no drift, no issue", code: "0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bin, tmp := t.TempDir(), t.TempDir()
			args := filepath.Join(bin, "args")
			stub := "#!/bin/sh\nif [ \"$2\" = list ]; then printf '%s' \"$OPEN\"; exit 0; fi\nprintf '%s\\n' \"$*\" >> " + args + "\n"
			if err := os.WriteFile(filepath.Join(bin, "gh"), []byte(stub), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tmp, "drift.md"), []byte("drift\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bash, "-e", "-c", script)
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "RUNNER_TEMP="+tmp,
				"GITHUB_REPOSITORY=o/r", "CODE="+tt.code, "OPEN="+tt.open)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("script failed: %v\n%s", err, out)
			}
			got, _ := os.ReadFile(args)
			calls := strings.Split(strings.TrimSpace(string(got)), "\n")
			if tt.want == "" {
				if len(got) != 0 {
					t.Fatalf("gh calls %q, want none", got)
				}
				return
			}
			if len(calls) != 1 || !strings.HasPrefix(calls[0], tt.want) {
				t.Fatalf("gh calls %q, want one starting %q", calls, tt.want)
			}
		})
	}
}

// TestGitLabCIExampleDriftIssueScript runs the GitLab drift job's issue
// script with bash, the real curl and jq, against a stand-in of GitLab's
// issues API on loopback: drift opens one issue labelled tandem-drift with
// the report as its description, or edits the open one; no drift closes it
// with a note; no drift without an issue writes nothing. Never two issues.
func TestGitLabCIExampleDriftIssueScript(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (make deps installs it): %v", tool, err)
		}
	}
	gl, _ := readExample(t, "gitlab-ci.yaml")
	var script string
	for _, l := range toSlice(gl["tandem-drift"].(map[string]any)["script"]) {
		if strings.Contains(toString(l), "/issues") {
			script = toString(l)
		}
	}
	if script == "" {
		t.Fatal("no drift issue script in the example")
	}
	// A report with what breaks hand-made JSON: quotes, backslashes, backticks, newlines.
	const report = "<!-- tandem:report -->\n### tandem drift at `abc`\n\n\"quoted\" \\ back\\slash\n"
	const token = "glpat-e2e-token"
	for _, tt := range []struct {
		name, code, open string
		want             []string // the writes: "METHOD path JSON"
	}{
		{name: "drift, no issue", code: "2", want: []string{`POST /api/v4/projects/42/issues {"description":` + jsonString(report) + `,"labels":"tandem-drift","title":"tandem: the clusters drifted from git"}`}},
		{name: "drift, an open issue", code: "2", open: "7", want: []string{`PUT /api/v4/projects/42/issues/7 {"description":` + jsonString(report) + `}`}},
		{name: "no drift, an open issue", code: "0", open: "7", want: []string{`POST /api/v4/projects/42/issues/7/notes {"body":"No drift at `, `PUT /api/v4/projects/42/issues/7 {"state_event":"close"}`}},
		{name: "no drift, no issue", code: "0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var writes []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("PRIVATE-TOKEN") != token {
					http.Error(w, `{"message":"401 Unauthorized"}`, http.StatusUnauthorized)
					return
				}
				if r.Method == http.MethodGet {
					if r.URL.Path != "/api/v4/projects/42/issues" || r.URL.Query().Get("labels") != "tandem-drift" || r.URL.Query().Get("state") != "opened" {
						t.Errorf("unexpected read %s", r.URL)
					}
					if tt.open == "" {
						fmt.Fprint(w, `[]`)
					} else {
						fmt.Fprintf(w, `[{"id":900,"iid":%s,"title":"tandem: the clusters drifted from git"}]`, tt.open)
					}
					return
				}
				var body map[string]any
				if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Header.Get("Content-Type") != "application/json" {
					t.Errorf("%s %s: not a JSON body (%v, %s)", r.Method, r.URL.Path, err, r.Header.Get("Content-Type"))
				}
				b, _ := json.Marshal(body)
				mu.Lock()
				writes = append(writes, r.Method+" "+r.URL.Path+" "+string(b))
				mu.Unlock()
				fmt.Fprint(w, `{"iid":7}`)
			}))
			defer srv.Close()
			dir := t.TempDir()
			for name, body := range map[string]string{"drift.md": report, "drift.code": tt.code + "\n"} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("bash", "-e", "-o", "pipefail", "-c", script)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "CI_API_V4_URL="+srv.URL+"/api/v4", "CI_PROJECT_ID=42", "TANDEM_DRIFT_TOKEN="+token)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("script failed: %v\n%s", err, out)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(writes) != len(tt.want) {
				t.Fatalf("writes %q, want %q", writes, tt.want)
			}
			for i := range writes {
				if !strings.HasPrefix(writes[i], tt.want[i]) {
					t.Errorf("write %d = %q, want %q…", i, writes[i], tt.want[i])
				}
			}
		})
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
