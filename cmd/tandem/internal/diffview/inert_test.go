package diffview

import (
	"html"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/reconciler"
)

// TestMarkdownClusterTextMakesNothingLive: a live diff's notes carry text
// from the cluster — the chart name and version of the Helm release record,
// `last attempt <status>` — which whoever may write a release record (a
// person's `helm upgrade`, a Secret in the namespace) chooses. In the drift
// issue the bot opens, and in a pull request's comment, that text must not
// notify anyone (@user, @org/team), link anywhere, or leave a backlink in
// another issue (#12, owner/repo#3): each stays plain text, shown as written.
// Found by review (revvendor LOW 6): the chart note reached the issue as live
// Markdown.
func TestMarkdownClusterTextMakesNothingLive(t *testing.T) {
	notes := []string{
		"chart @octocat [release notes](https://evil.example/x)-1.0.0 → app-0.1.0",
		"last attempt see www.evil.example or mail a@b.example, about #12 and acme/shop#3 <img src=x>",
		"chart web-1.4.0 → web-1.5.0",
	}
	rep := &reconciler.DiffReport{Mode: reconciler.ModeLive, To: toSHA, Clusters: []reconciler.ClusterDiff{{
		Name: "blue", Role: "active",
		Releases: []reconciler.ReleaseDiff{{Name: "app", Namespace: "app", Change: reconciler.ChangeChanged, Notes: notes}},
	}}}
	md := Markdown(rep, DefaultMarkdownOptions())
	for _, live := range []string{"@octocat", "a@b", "](", "[release", "https://", "www.evil", "#12", "shop#3", "<img"} {
		if strings.Contains(md, live) {
			t.Errorf("the report holds %q, live Markdown from the cluster:\n%s", live, md)
		}
	}
	// Shown as written: what the reader sees (entities decoded, the
	// zero-width spaces invisible) is each note, unchanged.
	for _, n := range notes {
		found := false
		for _, line := range strings.Split(md, "\n") {
			if seen, ok := strings.CutPrefix(line, "- "); ok && strings.ReplaceAll(html.UnescapeString(seen), "\u200b", "") == n {
				found = true
			}
		}
		if !found {
			t.Errorf("note %q is not shown as written:\n%s", n, md)
		}
	}
}
