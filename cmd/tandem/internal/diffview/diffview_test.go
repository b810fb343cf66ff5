package diffview

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/reconciler"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	fromSHA = "3f2c1ab8e5d4c3b2a1908f7e6d5c4b3a29180706"
	toSHA   = "9d81e07c6b5a49382716f5e4d3c2b1a098765432"
)

// twoClusters lists the Standby cluster first, to show that formatters put Active first.
func twoClusters() *reconciler.DiffReport {
	return &reconciler.DiffReport{
		Mode: reconciler.ModeAgainst, From: fromSHA, To: toSHA,
		Clusters: []reconciler.ClusterDiff{
			{
				Name: "green", Role: "standby",
				Releases: []reconciler.ReleaseDiff{
					{Name: "cache", Namespace: "shop", Change: reconciler.ChangeUnchanged},
					{Name: "web", Namespace: "shop", Change: reconciler.ChangeChanged, Objects: []reconciler.ObjectDiff{
						{APIVersion: "v1", Kind: "ConfigMap", Namespace: "shop", Name: "web-config", Change: reconciler.ChangeChanged,
							Diff: "@@ -1,5 +1,5 @@\n apiVersion: v1\n data:\n-  greeting: hello from green\n+  greeting: hello again\n kind: ConfigMap\n"},
					}},
				},
			},
			{
				Name: "blue", Role: "active",
				Releases: []reconciler.ReleaseDiff{
					{Name: "cache", Namespace: "shop", Change: reconciler.ChangeUnchanged},
					{Name: "web", Namespace: "shop", Change: reconciler.ChangeChanged, Notes: []string{"chart web-1.4.0 → web-1.5.0"}, Objects: []reconciler.ObjectDiff{
						{APIVersion: "v1", Kind: "ConfigMap", Namespace: "shop", Name: "web-config", Change: reconciler.ChangeChanged,
							Diff: "@@ -1,5 +1,5 @@\n apiVersion: v1\n data:\n-  greeting: hello from blue\n+  greeting: hello again\n kind: ConfigMap\n"},
						{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web", Change: reconciler.ChangeChanged,
							Diff: "@@ -20,7 +20,7 @@\n     spec:\n       containers:\n-      - image: registry.local/web:2.1\n+      - image: registry.local/web:2.2\n         name: web\n"},
						{APIVersion: "v1", Kind: "Service", Namespace: "shop", Name: "web", Change: reconciler.ChangeUnchanged},
					}},
					{Name: "worker", Namespace: "shop", Change: reconciler.ChangeAdded, Notes: []string{"new release on this cluster"}, Objects: []reconciler.ObjectDiff{
						{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "worker", Change: reconciler.ChangeAdded,
							Diff: "@@ -0,0 +1,4 @@\n+apiVersion: apps/v1\n+kind: Deployment\n+metadata:\n+  name: worker\n"},
					}},
					{Name: "legacy", Namespace: "shop", Change: reconciler.ChangeRemoved, Notes: []string{"release would be uninstalled (pruned) from this cluster"}},
				},
			},
		},
	}
}

// maskedSecret is drift on the Standby cluster, a Secret among it, already masked by the reconciler.
func maskedSecret() *reconciler.DiffReport {
	return &reconciler.DiffReport{
		Mode: reconciler.ModeLive, To: toSHA,
		Clusters: []reconciler.ClusterDiff{
			{Name: "blue", Role: "active", Releases: []reconciler.ReleaseDiff{{Name: "web", Namespace: "shop", Change: reconciler.ChangeUnchanged}}},
			{Name: "green", Role: "standby", Releases: []reconciler.ReleaseDiff{
				{Name: "web", Namespace: "shop", Change: reconciler.ChangeChanged, Objects: []reconciler.ObjectDiff{
					{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web", Change: reconciler.ChangeChanged,
						Diff: "@@ -20,3 +20,3 @@\n       containers:\n-      - image: registry.local/web:HACKED\n+      - image: registry.local/web:2.1\n"},
					{APIVersion: "v1", Kind: "Secret", Namespace: "shop", Name: "web-secret", Change: reconciler.ChangeChanged,
						Diff: "@@ -1,3 +1,3 @@\n data:\n-  apiKey: (hidden, hmac 1f3a9c0d2e)\n+  apiKey: (hidden, hmac 9bc0aa17f4)\n kind: Secret\n"},
				}},
			}},
		},
	}
}

func noDifferences() *reconciler.DiffReport {
	return &reconciler.DiffReport{
		Mode: reconciler.ModeAgainst, From: fromSHA, To: toSHA,
		Clusters: []reconciler.ClusterDiff{
			{Name: "blue", Role: "active", Releases: []reconciler.ReleaseDiff{{Name: "web", Namespace: "shop", Change: reconciler.ChangeUnchanged}, {Name: "cache", Namespace: "shop", Change: reconciler.ChangeUnchanged}}},
			{Name: "green", Role: "standby", Releases: []reconciler.ReleaseDiff{{Name: "web", Namespace: "shop", Change: reconciler.ChangeUnchanged}}},
		},
	}
}

func clusterError() *reconciler.DiffReport {
	return &reconciler.DiffReport{
		Mode: reconciler.ModeLive, To: toSHA,
		Clusters: []reconciler.ClusterDiff{
			{Name: "blue", Role: "active", Releases: []reconciler.ReleaseDiff{{Name: "web", Namespace: "shop", Change: reconciler.ChangeUnchanged}}},
			{Name: "green", Role: "standby", Releases: []reconciler.ReleaseDiff{},
				Error: `connect: Get "https://10.0.0.2:6443/version": dial tcp 10.0.0.2:6443: connect: connection refused`},
		},
	}
}

// backticks has diff lines that hold Markdown fences, and names that hold HTML.
func backticks() *reconciler.DiffReport {
	return &reconciler.DiffReport{
		Mode: reconciler.ModeAgainst, From: "origin/main", To: toSHA,
		Clusters: []reconciler.ClusterDiff{
			{Name: "blue", Role: "active", Releases: []reconciler.ReleaseDiff{
				{Name: "docs", Namespace: "docs", Change: reconciler.ChangeChanged, Notes: []string{"values <b>changed</b> | see `values.yaml`"}, Objects: []reconciler.ObjectDiff{
					{APIVersion: "v1", Kind: "ConfigMap", Namespace: "docs", Name: "readme", Change: reconciler.ChangeChanged,
						Diff: "@@ -1,6 +1,6 @@\n data:\n   README.md: |\n    ```\n-    old ``` text\n+    new ```` text\n    ```\n"},
				}},
			}},
		},
	}
}

// huge is 50 releases on two clusters, each with 4 objects of 60 changed lines.
func huge() *reconciler.DiffReport {
	d := &reconciler.DiffReport{Mode: reconciler.ModeAgainst, From: fromSHA, To: toSHA}
	for _, c := range []struct{ name, role string }{{"green", "standby"}, {"blue", "active"}} {
		cd := reconciler.ClusterDiff{Name: c.name, Role: c.role}
		for r := range 25 {
			rd := reconciler.ReleaseDiff{Name: fmt.Sprintf("app-%02d", r), Namespace: "apps", Change: reconciler.ChangeChanged}
			for o := range 4 {
				var diff strings.Builder
				fmt.Fprintf(&diff, "@@ -1,60 +1,60 @@\n")
				for l := range 30 {
					fmt.Fprintf(&diff, "-  key-%03d: old value on %s for release %d object %d\n", l, c.name, r, o)
					fmt.Fprintf(&diff, "+  key-%03d: new value on %s for release %d object %d\n", l, c.name, r, o)
				}
				rd.Objects = append(rd.Objects, reconciler.ObjectDiff{APIVersion: "v1", Kind: "ConfigMap", Namespace: "apps",
					Name: fmt.Sprintf("%s-app-%02d-cm-%d", c.name, r, o), Change: reconciler.ChangeChanged, Diff: diff.String()})
			}
			cd.Releases = append(cd.Releases, rd)
		}
		d.Clusters = append(d.Clusters, cd)
	}
	return d
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got):\n%s", path, diff)
	}
}

var reports = []struct {
	name   string
	report func() *reconciler.DiffReport
}{
	{"two-clusters", twoClusters},
	{"masked-secret", maskedSecret},
	{"no-differences", noDifferences},
	{"cluster-error", clusterError},
	{"backticks", backticks},
}

func TestText(t *testing.T) {
	for _, tt := range reports {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Text(&b, tt.report()); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name+".txt", b.String())
		})
	}
}

func TestMarkdown(t *testing.T) {
	for _, tt := range reports {
		t.Run(tt.name, func(t *testing.T) {
			got := Markdown(tt.report(), DefaultMarkdownOptions())
			checkMarkdown(t, got, DefaultMarkdownOptions().MaxBytes)
			golden(t, tt.name+".md", got)
		})
	}
}

func TestJSON(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, twoClusters()); err != nil {
		t.Fatal(err)
	}
	golden(t, "two-clusters.json", b.String())
	var back reconciler.DiffReport
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(twoClusters(), &back); diff != "" {
		t.Errorf("JSON does not round-trip (-want +got):\n%s", diff)
	}
}

// TestMarkdownContent states the properties the golden files must keep, so
// that an -update cannot bless a regression in them.
func TestMarkdownContent(t *testing.T) {
	tests := []struct {
		name    string
		report  *reconciler.DiffReport
		opts    MarkdownOptions
		want    []string // in this order
		notWant []string
	}{
		{
			name:   "active first, short SHAs, summary per cluster",
			report: twoClusters(), opts: DefaultMarkdownOptions(),
			want: []string{Marker + "\n### tandem plan for `3f2c1ab` → `9d81e07`\n", "| blue | active | 1 | 1 | 1 | 1 | 3 |", "| green | standby | 0 | 1 | 0 | 1 | 1 |",
				"<details><summary><b>blue</b> · web · 2 objects</summary>", "- chart web-1.4.0 → web-1.5.0", "```diff\n # ConfigMap shop/web-config\n", "-  greeting: hello from blue\n+  greeting: hello again\n",
				"<b>blue</b> · worker · added · 1 object", "<b>blue</b> · legacy · removed</summary>", "<b>green</b> · web · 1 object"},
			notWant: []string{"Service shop/web", "No changes"},
		},
		{
			name:   "live mode heading, masked secret shown as given",
			report: maskedSecret(), opts: DefaultMarkdownOptions(),
			want: []string{"### tandem drift at `9d81e07`", "| blue | active | 0 | 0 | 0 | 1 | 0 |", " # Secret shop/web-secret\n", "-  apiKey: (hidden, hmac 1f3a9c0d2e)"},
		},
		{
			name:   "no differences",
			report: noDifferences(), opts: DefaultMarkdownOptions(),
			want:    []string{"**No changes.**"},
			notWant: []string{"<details>", "```"},
		},
		{
			name:   "cluster error",
			report: clusterError(), opts: DefaultMarkdownOptions(),
			want:    []string{"**No changes** on the clusters that could be diffed; 1 cluster could not be.", "| green | standby | — |", "**⚠ green** (standby) could not be diffed: `connect: Get \"https://10.0.0.2:6443/version\"", "connection refused`"},
			notWant: []string{"**No changes.**"},
		},
		{
			name:   "longer fence around backticks, HTML escaped",
			report: backticks(), opts: DefaultMarkdownOptions(),
			want:    []string{"### tandem plan for `origin/main` → `9d81e07`", "- values &lt;b&gt;changed&lt;/b&gt; | see `values.yaml`", "\n`````diff\n", "\n`````\n"},
			notWant: []string{"\n```diff"},
		},
		{
			name:   "title",
			report: twoClusters(), opts: MarkdownOptions{Title: "tandem plan for **production**"},
			want: []string{Marker + "\n### tandem plan for **production**\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Markdown(tt.report, tt.opts)
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("missing or out of order: %q\nin:\n%s", w, got)
					continue
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("should not hold %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestMarkdownHuge(t *testing.T) {
	d := huge()
	var full []string
	byHeader := map[string][]string{}
	for _, c := range activeFirst(d.Clusters) {
		for _, r := range c.Releases {
			s := newSection(c, r.Name, r)
			byHeader[s.lines[0]] = s.lines
			full = append(full, s.summary)
		}
	}

	small := Markdown(d, MarkdownOptions{MaxBytes: 6000})
	golden(t, "huge-6000.md", small)

	for limit := minMaxBytes; limit <= 70000; limit += 1499 {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			got := Markdown(d, MarkdownOptions{MaxBytes: limit})
			checkMarkdown(t, got, limit)
			if n := strings.Count(got, "```"); n%2 != 0 {
				t.Errorf("odd number (%d) of ``` in:\n%s", n, got)
			}
			if !strings.Contains(got, "more lines of this release's diff not shown; run `tandem diff` locally for all of it") && !strings.Contains(got, "**Not shown**") {
				t.Errorf("no note says what was cut:\n%s", got)
			}
			if limit > 10000 && !strings.Contains(got, "more lines of this release's diff not shown") {
				t.Errorf("at %d bytes one release should be shown cut:\n%s", limit, got)
			}
			// Every release is either shown (whole or cut) or listed (or counted) as not shown.
			shown := strings.Count(got, "<details>")
			listed := len(regexp.MustCompile(`(?m)^- <b>`).FindAllString(got, -1))
			counted := 0
			if m := regexp.MustCompile(`- … and (\d+) more releases?`).FindStringSubmatch(got); m != nil {
				fmt.Sscan(m[1], &counted)
			}
			if shown+listed+counted != len(full) {
				t.Errorf("%d shown + %d listed + %d counted, want %d releases", shown, listed, counted, len(full))
			}
			// A cut diff is a prefix of the release's lines, cut at a line boundary.
			for _, block := range fenced(got) {
				want, ok := byHeader[block[0]]
				if !ok {
					t.Fatalf("fence starting %q is no release's", block[0])
				}
				if len(block) > len(want) || !cmp.Equal(want[:len(block)], block) {
					t.Errorf("fence starting %q is not a prefix of the release's diff", block[0])
				}
			}
		})
	}

	got := Markdown(d, DefaultMarkdownOptions())
	if !strings.HasPrefix(got, Marker) || len(got) > 65000 || len(got) < 60000 {
		t.Errorf("default limit: %d bytes, want the comment close to but under 65,000", len(got))
	}
}

func TestMarkdownLongLinesAndErrors(t *testing.T) {
	long := strings.Repeat("x", 50000)
	d := &reconciler.DiffReport{Mode: reconciler.ModeLive, To: "main", Clusters: []reconciler.ClusterDiff{
		{Name: "blue", Role: "active", Error: strings.Repeat("unreachable ", 1000)},
		{Name: "green", Role: "standby", Releases: []reconciler.ReleaseDiff{{Name: "web", Namespace: "shop", Change: reconciler.ChangeChanged, Objects: []reconciler.ObjectDiff{
			{Kind: "ConfigMap", Namespace: "shop", Name: "blob", Change: reconciler.ChangeChanged, Diff: "-  blob: " + long + "\n+  blob: y\n"},
		}}}},
	}}
	got := Markdown(d, DefaultMarkdownOptions())
	checkMarkdown(t, got, 65000)
	if len(got) > 3000 {
		t.Errorf("a 50 kB line and a 12 kB error made a %d-byte comment; both should be clipped", len(got))
	}
	for _, want := range []string{"-  blob: xxx", "more bytes)\n+  blob: y\n", "unreachable unreachable", "more bytes)`"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

// checkMarkdown asserts the comment's invariants: within the limit, the
// marker first, every fence closed, <details> balanced and never inside a fence.
func checkMarkdown(t *testing.T, s string, limit int) {
	t.Helper()
	if len(s) > limit {
		t.Errorf("comment is %d bytes, over the %d limit", len(s), limit)
	}
	if !strings.HasPrefix(s, Marker+"\n") {
		t.Errorf("comment does not start with the marker line")
	}
	if o, c := strings.Count(s, "<details>"), strings.Count(s, "</details>"); o != c {
		t.Errorf("%d <details> but %d </details>", o, c)
	}
	fence := ""
	depth := 0
	for i, l := range strings.Split(s, "\n") {
		if fence != "" {
			if t2 := strings.TrimLeft(l, " "); len(l)-len(t2) <= 3 && strings.HasPrefix(t2, fence) && strings.Trim(t2, "` ") == "" {
				fence = ""
			}
			continue
		}
		if m := regexp.MustCompile("^ {0,3}(`{3,})[^`]*$").FindStringSubmatch(l); m != nil {
			fence = m[1]
			continue
		}
		depth += strings.Count(l, "<details>") - strings.Count(l, "</details>")
		if depth < 0 || depth > 1 {
			t.Errorf("line %d: <details> nesting %d", i+1, depth)
		}
	}
	if fence != "" {
		t.Errorf("a %s fence is left open", fence)
	}
	if depth != 0 {
		t.Errorf("%d <details> left open", depth)
	}
}

// fenced returns the content lines of each diff fence.
func fenced(s string) [][]string {
	var out [][]string
	var cur []string
	fence := ""
	for _, l := range strings.Split(s, "\n") {
		switch {
		case fence == "" && strings.HasSuffix(l, "diff") && strings.Trim(strings.TrimSuffix(l, "diff"), "`") == "":
			fence, cur = strings.TrimSuffix(l, "diff"), nil
		case fence != "" && l == fence:
			out = append(out, cur)
			fence = ""
		case fence != "":
			cur = append(cur, l)
		}
	}
	return out
}

func TestNilReport(t *testing.T) {
	if err := Text(&bytes.Buffer{}, nil); err == nil {
		t.Error("Text(nil) did not fail")
	}
	if err := JSON(&bytes.Buffer{}, nil); err == nil {
		t.Error("JSON(nil) did not fail")
	}
	checkMarkdown(t, Markdown(nil, MarkdownOptions{}), 65000)
}

func TestTextSanitizesControlCharacters(t *testing.T) {
	d := &reconciler.DiffReport{Clusters: []reconciler.ClusterDiff{{Name: "blue", Role: "active", Releases: []reconciler.ReleaseDiff{
		{Name: "web", Change: reconciler.ChangeChanged, Objects: []reconciler.ObjectDiff{{Kind: "ConfigMap", Name: "x", Change: reconciler.ChangeChanged, Diff: "+  motd: \x1b[2Jgotcha\n"}}},
	}}}}
	var b bytes.Buffer
	if err := Text(&b, d); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "\x1b") || !strings.Contains(b.String(), `+     motd: \x1b[2Jgotcha`) {
		t.Errorf("escape sequence not neutralised:\n%q", b.String())
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk full") }

func TestTextWriteError(t *testing.T) {
	if err := Text(failingWriter{}, twoClusters()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Text error = %v, want the writer's", err)
	}
}

func TestMarkdownSummaryTooLarge(t *testing.T) {
	d := &reconciler.DiffReport{Mode: reconciler.ModeLive, To: toSHA}
	for i := range 20 {
		d.Clusters = append(d.Clusters, reconciler.ClusterDiff{Name: fmt.Sprintf("cluster-%02d", i), Role: "standby", Error: strings.Repeat("unreachable ", 100)})
	}
	got := Markdown(d, MarkdownOptions{MaxBytes: 1})
	checkMarkdown(t, got, minMaxBytes)
	want := Marker + "\n### tandem drift at `9d81e07`\n\nThe report is too large for a comment of at most 2048 bytes; run `tandem diff` locally to see it.\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// The PR plan names the workloads a guard change holds or releases, not
// only how many (review of issue 12, 9), at most maxGuardList of each.
func TestMarkdownGuardNamesWorkloads(t *testing.T) {
	d := twoClusters()
	var many []string
	for i := range maxGuardList + 3 {
		many = append(many, fmt.Sprintf("shop.deployments.w%02d", i))
	}
	d.Clusters[0].Guard = &reconciler.GuardDiff{Change: reconciler.ChangeChanged, Added: many, Removed: []string{"old.statefulsets.db"}}
	got := Markdown(d, DefaultMarkdownOptions())
	for _, want := range []string{
		"Standby guard on **green**: 13 workloads added, 1 removed.",
		"- held at zero (scale refused): `shop.deployments.w00`",
		"`shop.deployments.w09`, and 3 more",
		"- no longer held: `old.statefulsets.db`",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "w10") {
		t.Errorf("Markdown lists more than %d workloads:\n%s", maxGuardList, got)
	}
}
