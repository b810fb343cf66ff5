package comment

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// The CI examples in examples/ci post what this package writes. Issue 11
// item 6: they must be safe to copy. Each property a copy relies on is
// asserted here, job by job: tandem's version pinned, actions pinned to a
// commit, checkouts without persisted credentials, the plan (untrusted
// content) apart from the comment (the write token) and from the apply
// (main only, a protected environment, the cluster credentials), and
// comments that say why.

func readExample(t *testing.T, name string) (map[string]any, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "ci", name))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc, string(b)
}

// pinnedVersion is a release tag or a full commit: what `go install ...@V` resolves to one module version forever.
var pinnedVersion = regexp.MustCompile(`^(v\d+\.\d+\.\d+|[0-9a-f]{40})$`)

// pinnedAction is owner/repo[/path]@<40 hex>: a commit, not a tag that can be moved.
var pinnedAction = regexp.MustCompile(`^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$`)

// code returns the text's lines that are not comments.
func code(text string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// checkVersionPinned: the version variable is a tag or commit, every go
// install uses it, and nothing installs @latest.
func checkVersionPinned(t *testing.T, text string, vars map[string]any) {
	t.Helper()
	if v := toString(vars["TANDEM_VERSION"]); !pinnedVersion.MatchString(v) {
		t.Errorf("TANDEM_VERSION = %q, want a release tag (v1.2.3) or a full commit", v)
	}
	c := code(text)
	if strings.Contains(c, "@latest") || regexp.MustCompile(`(?i)\blatest\b`).MatchString(toString(vars["TANDEM_VERSION"])) {
		t.Error("the example installs @latest")
	}
	installs := regexp.MustCompile(`go install "?([^"\s]+)"?`).FindAllStringSubmatch(c, -1)
	if len(installs) == 0 {
		t.Error("the example never installs tandem")
	}
	for _, m := range installs {
		if !strings.HasSuffix(m[1], "@${TANDEM_VERSION}") {
			t.Errorf("go install %s: not pinned to ${TANDEM_VERSION}", m[1])
		}
	}
}

// checkWhy: the comments say why for each property a copy relies on.
func checkWhy(t *testing.T, text string, why []string) {
	t.Helper()
	var comments strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if i := strings.Index(l, "# "); i >= 0 && (strings.HasPrefix(strings.TrimSpace(l), "#") || strings.Contains(l, " # ")) {
			comments.WriteString(strings.TrimSpace(l[i+2:]) + " ")
		}
	}
	for _, w := range why {
		if !strings.Contains(comments.String(), w) {
			t.Errorf("no comment says %q", w)
		}
	}
}

type ghStep struct {
	name, uses, run string
	with, env       map[string]any
	raw             map[string]any
}

func ghSteps(job map[string]any) []ghStep {
	var out []ghStep
	for _, s := range toSlice(job["steps"]) {
		m, _ := s.(map[string]any)
		with, _ := m["with"].(map[string]any)
		env, _ := m["env"].(map[string]any)
		out = append(out, ghStep{name: toString(m["name"]), uses: toString(m["uses"]), run: toString(m["run"]), with: with, env: env, raw: m})
	}
	return out
}

// jobText is everything a job runs or passes to a step, for searching.
func jobText(job map[string]any) string {
	b, _ := yaml.Marshal(job)
	return string(b)
}

func TestGitHubActionsExample(t *testing.T) {
	doc, text := readExample(t, "github-actions.yaml")
	// YAML 1.1 (which sigs.k8s.io/yaml speaks) reads the key `on` as true; GitHub reads "on".
	on, _ := doc["on"].(map[string]any)
	if on == nil {
		on, _ = doc["true"].(map[string]any)
	}
	var events []string
	for ev := range on {
		events = append(events, ev)
	}
	slices.Sort(events)
	// pull_request_target and workflow_run run with the base repository's secrets and a write
	// token next to a pull request's content.
	if diff := cmp.Diff([]string{"pull_request", "push", "schedule", "workflow_dispatch"}, events); diff != "" {
		t.Errorf("triggers (-want +got):\n%s", diff)
	}
	if perms, ok := doc["permissions"].(map[string]any); !ok || len(perms) != 0 {
		t.Errorf("workflow permissions = %v, want {} (each job asks for its own)", doc["permissions"])
	}
	env, _ := doc["env"].(map[string]any)
	checkVersionPinned(t, text, env)

	jobs, _ := doc["jobs"].(map[string]any)
	var names []string
	for n := range jobs {
		names = append(names, n)
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"comment", "drift", "plan", "plan-merge", "reconcile"}, names); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
	for name, j := range jobs {
		job, _ := j.(map[string]any)
		if job["runs-on"] == nil || job["if"] == nil {
			t.Errorf("job %q: no runs-on or if", name)
		}
		if _, ok := job["permissions"].(map[string]any); !ok {
			t.Errorf("job %q does not say its permissions", name)
		}
		for i, s := range ghSteps(job) {
			if (s.run == "") == (s.uses == "") {
				t.Errorf("job %q step %d: want exactly one of run and uses", name, i)
			}
			if s.uses != "" && !pinnedAction.MatchString(s.uses) {
				t.Errorf("job %q step %d: action %q is not pinned to a full commit SHA", name, i, s.uses)
			}
			if strings.HasPrefix(s.uses, "actions/checkout@") {
				if v, ok := s.with["persist-credentials"].(bool); !ok || v {
					t.Errorf("job %q step %d: checkout without persist-credentials: false (the token stays in .git/config)", name, i)
				}
			}
			if strings.HasPrefix(s.uses, "actions/setup-go@") && s.with["cache"] != false {
				t.Errorf("job %q step %d: setup-go with a cache a pull request's run can write", name, i)
			}
		}
		if name != "reconcile" && strings.Contains(jobText(job), "TANDEM_KUBECONFIG") {
			t.Errorf("job %q can reach the cluster credentials", name)
		}
		// Only reconcile gets the write credentials' environment; drift and plan-merge (which
		// reads the state records) the dry-run-only one; the pull request's jobs neither.
		readers := map[string]bool{"drift": true, "plan-merge": true}
		if want := map[string]any{"reconcile": "production", "drift": "production-read", "plan-merge": "production-read"}[name]; job["environment"] != want {
			t.Errorf("job %q environment = %v, want %v", name, job["environment"], want)
		}
		if !readers[name] && strings.Contains(jobText(job), "TANDEM_READ_KUBECONFIG") {
			t.Errorf("job %q can reach the read-only cluster credentials", name)
		}
		if readers[name] {
			steps := ghSteps(job)
			last := steps[len(steps)-1]
			if last.raw["if"] != "always()" || !strings.Contains(last.run, `rm -f "$RUNNER_TEMP/kubeconfig"`) {
				t.Errorf("job %q: its last step does not remove the kubeconfig whatever happened: %v", name, last.raw)
			}
		}
	}

	// plan: untrusted content, read-only, no secret at all.
	plan, _ := jobs["plan"].(map[string]any)
	if diff := cmp.Diff(map[string]any{"contents": "read"}, plan["permissions"]); diff != "" {
		t.Errorf("plan job permissions (-want +got):\n%s", diff)
	}
	if !strings.Contains(toString(plan["if"]), "github.event_name == 'pull_request'") {
		t.Errorf("plan job runs on %q, want pull requests only", plan["if"])
	}
	if strings.Contains(jobText(plan), "secrets.") {
		t.Error("plan job references a secret")
	}
	planText := jobText(plan)
	for _, w := range []string{"tandem diff --against", "-o markdown --manifest-dir . > plan.md", "actions/upload-artifact@"} {
		if !strings.Contains(planText, w) {
			t.Errorf("plan job does not run %q", w)
		}
	}

	// comment: the write token, and none of the pull request's content.
	cj, _ := jobs["comment"].(map[string]any)
	if diff := cmp.Diff(map[string]any{"pull-requests": "write"}, cj["permissions"]); diff != "" {
		t.Errorf("comment job permissions (-want +got):\n%s", diff)
	}
	if toString(cj["needs"]) != "plan" {
		t.Errorf("comment job needs %v, want plan", cj["needs"])
	}
	for _, w := range []string{"!cancelled()", "needs.plan.result == 'failure'", "github.event.pull_request.head.repo.full_name == github.repository"} {
		if !strings.Contains(toString(cj["if"]), w) {
			t.Errorf("comment job condition %q lacks %q", toString(cj["if"]), w)
		}
	}
	cText := jobText(cj)
	if strings.Contains(cText, "actions/checkout@") {
		t.Error("comment job checks out the repository: the write token would meet the pull request's content")
	}
	for _, w := range []string{"secrets.GITHUB_TOKEN", "actions/download-artifact@", "needs.plan.result",
		`tandem comment --github "$GITHUB_REPOSITORY" --pr "$PR_NUMBER" --file "$plan"`,
		`tandem comment --github "$GITHUB_REPOSITORY" --pr "$PR_NUMBER" --plan-failed --file "$plan"`} {
		if !strings.Contains(cText, w) {
			t.Errorf("comment job does not run %q", w)
		}
	}

	// reconcile: main only, a protected environment, the cluster credentials.
	rec, _ := jobs["reconcile"].(map[string]any)
	cond := toString(rec["if"])
	if !strings.Contains(cond, "github.event_name == 'push'") || !strings.Contains(cond, "github.ref == 'refs/heads/main'") {
		t.Errorf("reconcile job runs on %q, want pushes to main only", cond)
	}
	if rec["environment"] != "production" {
		t.Errorf("reconcile job environment = %v, want production (where TANDEM_KUBECONFIG lives)", rec["environment"])
	}
	if diff := cmp.Diff(map[string]any{"contents": "read"}, rec["permissions"]); diff != "" {
		t.Errorf("reconcile job permissions (-want +got):\n%s", diff)
	}
	if conc, _ := rec["concurrency"].(map[string]any); conc["cancel-in-progress"] != false {
		t.Errorf("reconcile job concurrency %v: a reconcile must never be cancelled half-way", rec["concurrency"])
	}
	rText := jobText(rec)
	for _, w := range []string{"secrets.TANDEM_KUBECONFIG", "tandem reconcile -o json --manifest-dir ."} {
		if !strings.Contains(rText, w) {
			t.Errorf("reconcile job does not run %q", w)
		}
	}

	// plan-merge: what the reconcile will change, for its approver: against the commit each
	// cluster last applied completely (its state record), else main before the push; reviewed
	// code, only the dry-run-only credentials.
	pm, _ := jobs["plan-merge"].(map[string]any)
	if diff := cmp.Diff(map[string]any{"contents": "read"}, pm["permissions"]); diff != "" {
		t.Errorf("plan-merge job permissions (-want +got):\n%s", diff)
	}
	if c := toString(pm["if"]); !strings.Contains(c, "github.event_name == 'push'") || !strings.Contains(c, "github.ref == 'refs/heads/main'") {
		t.Errorf("plan-merge job runs on %q, want pushes to main only", c)
	}
	if s := regexp.MustCompile(`secrets\.\w+`).FindAllString(jobText(pm), -1); !slices.Equal(s, []string{"secrets.TANDEM_READ_KUBECONFIG"}) {
		t.Errorf("plan-merge job references the secrets %v, want only TANDEM_READ_KUBECONFIG", s)
	}
	for _, w := range []string{"tandem status -o json --manifest-dir . --kubeconfig", ".state.appliedCommit", `tandem diff --against "$base"`,
		`key="applied $applied"`, `key="before $BEFORE"`, `key="live -"`, `tandem diff --kubeconfig "$tmp/kubeconfig"`, "github.event.before", "main before this push", "**Plan unavailable**"} {
		if !strings.Contains(jobText(pm), w) {
			t.Errorf("plan-merge job does not run %q", w)
		}
	}
	// A plan that cannot be made never holds a fix back: reconcile runs after plan-merge
	// whatever its result (TestCIPlanForTheApproverNeverBlocksAFix in cmd/tandem runs the step).
	if toString(rec["needs"]) != "plan-merge" {
		t.Errorf("reconcile job needs %v, want plan-merge (the approver sees its plan first)", rec["needs"])
	}
	if !strings.Contains(cond, "!cancelled()") {
		t.Errorf("reconcile job condition %q: without !cancelled() a failed plan-merge skips the reconcile, so a fix pushed onto a main that does not render never deploys", cond)
	}
	for _, s := range ghSteps(pm) {
		if s.raw["continue-on-error"] != nil {
			t.Errorf("plan-merge step %q: continue-on-error hides a failure from the approver; the step says it in the summary", s.name)
		}
	}

	// drift: scheduled, read-only cluster credentials, one issue.
	dj, _ := jobs["drift"].(map[string]any)
	if c := toString(dj["if"]); strings.Contains(c, "pull_request") || !strings.Contains(c, "github.event_name == 'schedule'") {
		t.Errorf("drift job runs on %q, want the schedule (and manual runs) only", c)
	}
	if diff := cmp.Diff(map[string]any{"contents": "read", "issues": "write"}, dj["permissions"]); diff != "" {
		t.Errorf("drift job permissions (-want +got):\n%s", diff)
	}
	dText := jobText(dj)
	for _, w := range []string{"secrets.TANDEM_READ_KUBECONFIG", "tandem diff --exit-code -o markdown --manifest-dir .", "--label tandem-drift", "rm -f \"$RUNNER_TEMP/kubeconfig\""} {
		if !strings.Contains(dText, w) {
			t.Errorf("drift job does not run %q", w)
		}
	}
	if strings.Contains(dText, "tandem reconcile") {
		t.Error("drift job writes to the clusters")
	}

	checkWhy(t, text, []string{
		"never `pull_request_target`", "least privilege", "Never `latest`",
		"pinned to a full commit SHA", "persist-credentials: false keeps the token out of .git/config",
		"Untrusted content", "The only write token", "runs none of its content", "No checkout",
		"a stale plan does not stay up", "Reviewed code only", "protect the", "deployment branches: main only",
		"Not read-only by RBAC alone", "Kubernetes authorizes a dry-run write like a real one", "drift-credential.yaml",
		"never blocks the apply", "A fix pushed onto a broken main must reach the clusters",
		"the commit it last applied completely",
	})
}

func TestGitLabCIExample(t *testing.T) {
	doc, text := readExample(t, "gitlab-ci.yaml")
	vars, _ := doc["variables"].(map[string]any)
	checkVersionPinned(t, text, vars)

	stages := map[string]bool{}
	for _, s := range toSlice(doc["stages"]) {
		stages[toString(s)] = true
	}
	jobs := map[string]map[string]any{}
	for name, v := range doc {
		if job, ok := v.(map[string]any); ok && job["script"] != nil {
			jobs[name] = job
		}
	}
	var names []string
	for n := range jobs {
		names = append(names, n)
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"tandem-comment", "tandem-drift", "tandem-plan", "tandem-plan-merge", "tandem-reconcile"}, names); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
	script := func(job map[string]any) string {
		var b strings.Builder
		for _, l := range toSlice(job["script"]) {
			line, ok := l.(string)
			if !ok {
				t.Errorf("script line %v is not a string", l)
			}
			b.WriteString(line + "\n")
		}
		return b.String()
	}
	for name, job := range jobs {
		if !stages[toString(job["stage"])] {
			t.Errorf("job %q: stage %v is not among %v", name, job["stage"], doc["stages"])
		}
		if len(toSlice(job["rules"])) == 0 {
			t.Errorf("job %q has no rules", name)
		}
		base, _ := doc[toString(job["extends"])].(map[string]any)
		if base == nil || base["image"] == nil || len(toSlice(base["before_script"])) == 0 {
			t.Errorf("job %q: extends %v, which does not build tandem", name, job["extends"])
		}
		if name != "tandem-reconcile" && strings.Contains(jobText(job), "TANDEM_KUBECONFIG") {
			t.Errorf("job %q uses the cluster credentials", name)
		}
		if name != "tandem-comment" && strings.Contains(jobText(job), "GITLAB_TOKEN") {
			t.Errorf("job %q uses the API token", name)
		}
		// The dry-run-only credentials: the jobs that read the clusters on the default branch.
		readers := map[string]bool{"tandem-plan-merge": true, "tandem-drift": true}
		if !readers[name] && strings.Contains(jobText(job), "TANDEM_READ_KUBECONFIG") {
			t.Errorf("job %q uses the read credentials", name)
		}
		if name != "tandem-drift" && strings.Contains(jobText(job), "TANDEM_DRIFT_TOKEN") {
			t.Errorf("job %q uses the drift issue token", name)
		}
		if e, _ := job["environment"].(map[string]any); readers[name] && (e["name"] != "production-read" || e["action"] != "prepare") {
			t.Errorf("job %q environment %v, want production-read (where its variables are scoped), action prepare", name, job["environment"])
		}
	}
	ruleIfs := func(job map[string]any) []string {
		var out []string
		for _, r := range toSlice(job["rules"]) {
			m, _ := r.(map[string]any)
			out = append(out, toString(m["if"]))
		}
		return out
	}
	envName := func(job map[string]any) string {
		e, _ := job["environment"].(map[string]any)
		return toString(e["name"])
	}

	// tandem-plan: untrusted content, no token, the job token out of .git/config first.
	plan := jobs["tandem-plan"]
	if diff := cmp.Diff([]string{`$CI_PIPELINE_SOURCE == "merge_request_event"`}, ruleIfs(plan)); diff != "" {
		t.Errorf("tandem-plan rules (-want +got):\n%s", diff)
	}
	if plan["environment"] != nil {
		t.Errorf("tandem-plan has environment %v: it would get that environment's variables", plan["environment"])
	}
	ps := script(plan)
	strip, diff := strings.Index(ps, `git remote set-url origin "${CI_PROJECT_URL}.git"`), strings.Index(ps, "tandem diff --against")
	if strip < 0 || diff < 0 || strip > diff {
		t.Errorf("tandem-plan does not drop the job token from the remote before rendering:\n%s", ps)
	}
	for _, w := range []string{"-o markdown --manifest-dir . > plan.md", `echo "$CI_PIPELINE_ID" > plan.ok`} {
		if !strings.Contains(ps, w) {
			t.Errorf("tandem-plan does not run %q", w)
		}
	}
	if art, _ := plan["artifacts"].(map[string]any); art["when"] != "always" {
		t.Errorf("tandem-plan artifacts %v: a failed plan's report must reach tandem-comment", plan["artifacts"])
	}

	// tandem-comment: the token (scoped to its environment), no checkout, also after a failed plan.
	cj := jobs["tandem-comment"]
	if envName(cj) != "tandem-comment" {
		t.Errorf("tandem-comment environment %v, want tandem-comment (GITLAB_TOKEN's scope)", cj["environment"])
	}
	if e, _ := cj["environment"].(map[string]any); e["action"] != "prepare" {
		t.Errorf("tandem-comment environment %v: want action prepare, which deploys nothing", cj["environment"])
	}
	if v, _ := cj["variables"].(map[string]any); v["GIT_STRATEGY"] != "none" {
		t.Errorf("tandem-comment variables %v: want GIT_STRATEGY none (no merge request content next to the token)", cj["variables"])
	}
	if diff := cmp.Diff([]any{map[string]any{"if": `$CI_PIPELINE_SOURCE == "merge_request_event" && $CI_MERGE_REQUEST_SOURCE_PROJECT_ID == $CI_MERGE_REQUEST_PROJECT_ID`, "when": "always"}}, cj["rules"]); diff != "" {
		t.Errorf("tandem-comment rules: want merge requests from this project, also after a failed plan (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{map[string]any{"job": "tandem-plan", "artifacts": true}}, cj["needs"]); diff != "" {
		t.Errorf("tandem-comment needs: want tandem-plan's artifacts (-want +got):\n%s", diff)
	}
	cs := script(cj)
	for _, w := range []string{`[ "$(cat plan.ok 2>/dev/null)" = "$CI_PIPELINE_ID" ]`,
		`tandem comment --gitlab "$CI_PROJECT_PATH" --mr "$CI_MERGE_REQUEST_IID" --file plan.md`,
		`tandem comment --gitlab "$CI_PROJECT_PATH" --mr "$CI_MERGE_REQUEST_IID" --plan-failed --file plan.md`} {
		if !strings.Contains(cs, w) {
			t.Errorf("tandem-comment does not run %q", w)
		}
	}

	// tandem-reconcile: the default branch only, its environment, never interrupted.
	rec := jobs["tandem-reconcile"]
	if diff := cmp.Diff([]string{`$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH`}, ruleIfs(rec)); diff != "" {
		t.Errorf("tandem-reconcile rules (-want +got):\n%s", diff)
	}
	if envName(rec) != "production" || rec["interruptible"] != false || rec["resource_group"] == nil {
		t.Errorf("tandem-reconcile: environment %v, interruptible %v, resource_group %v; want production, false, one",
			rec["environment"], rec["interruptible"], rec["resource_group"])
	}
	if !strings.Contains(script(rec), `tandem reconcile -o json --manifest-dir . --kubeconfig "$TANDEM_KUBECONFIG"`) {
		t.Error("tandem-reconcile does not run tandem reconcile with the kubeconfig")
	}

	// tandem-plan-merge: the plan for the approver, against what the clusters last applied; it
	// never holds the reconcile back (TestCIPlanForTheApproverNeverBlocksAFix in cmd/tandem runs it).
	pm := jobs["tandem-plan-merge"]
	if diff := cmp.Diff([]string{`$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH`}, ruleIfs(pm)); diff != "" {
		t.Errorf("tandem-plan-merge rules (-want +got):\n%s", diff)
	}
	if pm["allow_failure"] != true {
		t.Errorf("tandem-plan-merge allow_failure %v: a failed plan would hold back tandem-reconcile, and a fix pushed onto a broken default branch", pm["allow_failure"])
	}
	order := slices.IndexFunc(toSlice(doc["stages"]), func(s any) bool { return s == pm["stage"] })
	if order < 0 || order >= slices.IndexFunc(toSlice(doc["stages"]), func(s any) bool { return s == rec["stage"] }) {
		t.Errorf("tandem-plan-merge (stage %v) does not run before tandem-reconcile (stage %v)", pm["stage"], rec["stage"])
	}
	pms := script(pm)
	strip, status := strings.Index(pms, `git remote set-url origin "${CI_PROJECT_URL}.git"`), strings.Index(pms, "tandem status")
	if strip < 0 || status < 0 || strip > status {
		t.Errorf("tandem-plan-merge does not drop the job token from the remote first:\n%s", pms)
	}
	for _, w := range []string{`tandem status -o json --manifest-dir . --kubeconfig "$TANDEM_READ_KUBECONFIG"`, ".state.appliedCommit",
		`BEFORE="$CI_COMMIT_BEFORE_SHA"`, `tandem diff --against "$base"`, `tandem diff --kubeconfig "$TANDEM_READ_KUBECONFIG"`, `key="live -"`, "**Plan unavailable**", "cat plan.md"} {
		if !strings.Contains(pms, w) {
			t.Errorf("tandem-plan-merge does not run %q", w)
		}
	}
	if art, _ := pm["artifacts"].(map[string]any); art["when"] != "always" || !slices.Contains(toSlice(art["paths"]), any("plan.md")) {
		t.Errorf("tandem-plan-merge artifacts %v: want plan.md, always", pm["artifacts"])
	}

	// tandem-drift: scheduled (or by hand) on the default branch, the read credentials, one issue.
	dj := jobs["tandem-drift"]
	if diff := cmp.Diff([]string{`($CI_PIPELINE_SOURCE == "schedule" || $CI_PIPELINE_SOURCE == "web") && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH`}, ruleIfs(dj)); diff != "" {
		t.Errorf("tandem-drift rules (-want +got):\n%s", diff)
	}
	ds := script(dj)
	for _, w := range []string{`tandem diff --exit-code -o markdown --manifest-dir . --kubeconfig "$TANDEM_READ_KUBECONFIG"`, `[ "$code" -ne 1 ]`,
		"labels=tandem-drift&state=opened", `PRIVATE-TOKEN: $TANDEM_DRIFT_TOKEN`} {
		if !strings.Contains(ds, w) {
			t.Errorf("tandem-drift does not run %q", w)
		}
	}
	if strings.Contains(ds, "tandem reconcile") {
		t.Error("tandem-drift writes to the clusters")
	}

	checkWhy(t, text, []string{
		"Not read-only by RBAC alone", "Kubernetes authorizes a dry-run write like a real one", "drift-credential.yaml",
		"never holds the reconcile back", "a fix pushed onto a", "the commit it last", "deployment approvals",
		"Never `latest`", "environment scope `tandem-comment`", "environment scope `production`",
		"protected (protected branches only)", "no API token and no cluster credentials",
		"drop it before the", "no checkout", "a stale plan does not stay up", "Reviewed code only",
	})
}

func toSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func toString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case nil:
		return ""
	default:
		return fmt.Sprint(s)
	}
}
