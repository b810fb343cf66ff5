package comment

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The CI examples in examples/ci post what this package writes; they must
// stay valid YAML with the shape their CI system expects.

func readYAML(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "ci", name))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc
}

func TestGitHubActionsExample(t *testing.T) {
	doc := readYAML(t, "github-actions.yaml")
	// YAML 1.1 (which sigs.k8s.io/yaml speaks) reads the key `on` as true; GitHub reads "on".
	on, _ := doc["on"].(map[string]any)
	if on == nil {
		on, _ = doc["true"].(map[string]any)
	}
	for _, ev := range []string{"pull_request", "push"} {
		if _, ok := on[ev]; !ok {
			t.Errorf("workflow is not triggered on %s", ev)
		}
	}
	jobs, _ := doc["jobs"].(map[string]any)
	want := map[string][]string{
		"plan":      {"tandem diff --against", "-o markdown --manifest-dir .", "tandem comment --github \"$GITHUB_REPOSITORY\" --pr \"$PR_NUMBER\"", "secrets.GITHUB_TOKEN"},
		"reconcile": {"tandem reconcile -o json --manifest-dir .", "secrets.TANDEM_KUBECONFIG"},
	}
	for name, wants := range want {
		job, _ := jobs[name].(map[string]any)
		if job == nil {
			t.Errorf("no job %q", name)
			continue
		}
		if job["runs-on"] == nil || job["if"] == nil {
			t.Errorf("job %q: no runs-on or if", name)
		}
		steps, _ := job["steps"].([]any)
		if len(steps) == 0 {
			t.Errorf("job %q has no steps", name)
		}
		var all strings.Builder
		for i, s := range steps {
			step, _ := s.(map[string]any)
			run, hasRun := step["run"].(string)
			uses, hasUses := step["uses"].(string)
			if hasRun == hasUses {
				t.Errorf("job %q step %d: want exactly one of run and uses", name, i)
			}
			if hasUses && !strings.Contains(uses, "@") {
				t.Errorf("job %q step %d: action %q is not pinned", name, i, uses)
			}
			all.WriteString(run + "\n")
			for _, v := range []string{"env", "with"} {
				if m, ok := step[v].(map[string]any); ok {
					for _, val := range m {
						all.WriteString(toString(val) + "\n")
					}
				}
			}
		}
		for _, w := range wants {
			if !strings.Contains(all.String(), w) {
				t.Errorf("job %q does not run %q", name, w)
			}
		}
	}
	plan, _ := jobs["plan"].(map[string]any)
	if perms, _ := plan["permissions"].(map[string]any); perms["pull-requests"] != "write" {
		t.Errorf("plan job cannot write pull request comments: permissions %v", plan["permissions"])
	}
}

func TestGitLabCIExample(t *testing.T) {
	doc := readYAML(t, "gitlab-ci.yaml")
	stages := map[string]bool{}
	for _, s := range toSlice(doc["stages"]) {
		stages[toString(s)] = true
	}
	want := map[string][]string{
		"tandem-plan":      {"set -o pipefail", "tandem diff --against", "-o markdown --manifest-dir . | tee plan.md | tandem comment --gitlab \"$CI_PROJECT_PATH\" --mr \"$CI_MERGE_REQUEST_IID\""},
		"tandem-reconcile": {"tandem reconcile -o json --manifest-dir . --kubeconfig \"$TANDEM_KUBECONFIG\""},
	}
	for name, wants := range want {
		job, _ := doc[name].(map[string]any)
		if job == nil {
			t.Errorf("no job %q", name)
			continue
		}
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
		var script strings.Builder
		for _, l := range toSlice(job["script"]) {
			line, ok := l.(string)
			if !ok {
				t.Errorf("job %q: script line %v is not a string", name, l)
			}
			script.WriteString(line + "\n")
		}
		for _, w := range wants {
			if !strings.Contains(script.String(), w) {
				t.Errorf("job %q does not run %q", name, w)
			}
		}
	}
}

func toSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}
