package diffview

import (
	"fmt"
	"html"
	"strconv"
	"strings"

	"github.com/tandem-gitops/tandem/reconciler"
)

// Marker is the hidden first line of every Markdown report; the comment
// command finds its earlier comment by it and edits that one.
const Marker = "<!-- tandem:report -->"

// MarkdownOptions shape a pull-request comment.
type MarkdownOptions struct {
	// MaxBytes bounds the whole comment. GitHub refuses comments over 65,536
	// characters (and a character is at least a byte); GitLab allows 1,000,000.
	// 0 means the default; values below 2048 are raised to 2048.
	MaxBytes int
	// Title replaces the generated heading text ("tandem plan for `a` → `b`").
	Title string
}

// DefaultMarkdownOptions fit a GitHub comment.
func DefaultMarkdownOptions() MarkdownOptions { return MarkdownOptions{MaxBytes: 65000} }

const (
	minMaxBytes = 2048
	// maxLineBytes cuts a single enormous line (a minified ConfigMap value)
	// so that one line cannot push a whole release out of the comment.
	maxLineBytes = 1000
	// maxErrorBytes bounds a cluster's error text in the comment.
	maxErrorBytes = 500
)

// Markdown renders the report as a pull-request comment: the hidden Marker, a
// heading, a summary table (Active clusters first), one line per cluster that
// could not be diffed, and a collapsed <details> block per changed release
// with its notes and its objects' diffs. It stays within opts.MaxBytes:
// releases are shown in order while they fit, the first that does not fit is
// cut at a line boundary with a note saying how much is missing, and the
// rest are listed by name under "Not shown". Fences and <details> are always
// closed.
func Markdown(d *reconciler.DiffReport, opts MarkdownOptions) string {
	limit := opts.MaxBytes
	if limit <= 0 {
		limit = DefaultMarkdownOptions().MaxBytes
	}
	limit = max(limit, minMaxBytes)
	if d == nil {
		d = &reconciler.DiffReport{}
	}
	cs := activeFirst(d.Clusters)
	head := mdHeader(d, cs, opts.Title)

	var secs []section
	for _, c := range cs {
		names := releaseLabels(c.Releases)
		for i, r := range c.Releases {
			if r.Changed() {
				secs = append(secs, newSection(c, names[i], r))
			}
		}
	}
	tailCap := min(max(limit/8, 600), 4000)

	var b strings.Builder
	b.WriteString(head)
	budget := limit - len(head)
	if budget < len(notShown(secs, tailCap)) {
		return mdTooLarge(d, opts.Title, limit)
	}
	var hidden []section
	for i, s := range secs {
		room := budget - len(notShown(secs[i+1:], tailCap))
		if full := s.render(len(s.lines)); len(full) <= room {
			b.WriteString(full)
			budget -= len(full)
			continue
		}
		if cut, ok := s.truncate(room); ok {
			b.WriteString(cut)
			hidden = secs[i+1:]
		} else {
			hidden = secs[i:]
		}
		break
	}
	b.WriteString(notShown(hidden, tailCap))
	return b.String()
}

func mdHeader(d *reconciler.DiffReport, cs []reconciler.ClusterDiff, title string) string {
	var b strings.Builder
	b.WriteString(Marker + "\n")
	b.WriteString("### " + heading(d, title) + "\n\n")

	failed, changedReleases, changedClusters := 0, 0, 0
	for _, c := range cs {
		if c.Error != "" {
			failed++
		}
		n := 0
		for _, r := range c.Releases {
			if r.Changed() {
				n++
			}
		}
		changedReleases += n
		if n > 0 {
			changedClusters++
		}
	}
	switch {
	case changedReleases == 0 && failed == 0 && d.Mode == reconciler.ModeLive:
		b.WriteString("**No changes.** Every cluster matches the manifest.\n\n")
	case changedReleases == 0 && failed == 0:
		b.WriteString("**No changes.** Merging this leaves every cluster as it is.\n\n")
	case changedReleases == 0:
		fmt.Fprintf(&b, "**No changes** on the clusters that could be diffed; %s could not be.\n\n", plural(failed, "cluster"))
	case d.Mode == reconciler.ModeLive:
		fmt.Fprintf(&b, "**%s %s** from the manifest on %d of %s.\n\n", plural(changedReleases, "release"), verb(changedReleases, "differs", "differ"), changedClusters, plural(len(cs), "cluster"))
	default:
		fmt.Fprintf(&b, "**%s %s** on %d of %s.\n\n", plural(changedReleases, "release"), verb(changedReleases, "changes", "change"), changedClusters, plural(len(cs), "cluster"))
	}

	if len(cs) > 0 {
		b.WriteString("| cluster | role | releases added | changed | removed | unchanged | objects changed |\n")
		b.WriteString("|---|---|--:|--:|--:|--:|--:|\n")
		for _, c := range cs {
			if c.Error != "" {
				fmt.Fprintf(&b, "| %s | %s | — | — | — | — | — |\n", cell(c.Name), cell(c.Role))
				continue
			}
			count := map[reconciler.Change]int{}
			objects := 0
			for _, r := range c.Releases {
				count[r.Change]++
				if r.Changed() {
					objects += r.ChangedObjects()
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d |\n", cell(c.Name), cell(c.Role),
				count[reconciler.ChangeAdded], count[reconciler.ChangeChanged], count[reconciler.ChangeRemoved], count[reconciler.ChangeUnchanged], objects)
		}
		b.WriteString("\n")
	}
	for _, c := range cs {
		if g := c.Guard; g != nil && g.Change != reconciler.ChangeUnchanged {
			fmt.Fprintf(&b, "Standby guard on **%s**: %s.\n", html.EscapeString(c.Name), html.EscapeString(g.Summary()))
			b.WriteString(guardList("held at zero (scale refused)", g.Added))
			b.WriteString(guardList("no longer held", g.Removed))
			b.WriteString("\n")
		}
	}
	for _, c := range cs {
		if c.Error != "" {
			fmt.Fprintf(&b, "> **⚠ %s** (%s) could not be diffed: %s\n\n", html.EscapeString(c.Name), html.EscapeString(c.Role), codeSpan(clip(oneLine(c.Error), maxErrorBytes)))
		}
	}
	return b.String()
}

// maxGuardList caps each of a guard change's workload lists in Markdown;
// the JSON and text reports list them all.
const maxGuardList = 10

// guardList is a Markdown list line naming the guard's workloads
// ("namespace.resource.name"), the first maxGuardList of them.
func guardList(what string, keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	var names []string
	for i, k := range keys {
		if i == maxGuardList {
			names = append(names, fmt.Sprintf("and %d more (`tandem diff -o json` lists them)", len(keys)-maxGuardList))
			break
		}
		names = append(names, codeSpan(oneLine(k)))
	}
	return "- " + what + ": " + strings.Join(names, ", ") + "\n"
}

func heading(d *reconciler.DiffReport, title string) string {
	if t := oneLine(title); t != "" {
		return t
	}
	word := "plan"
	if d.Mode == reconciler.ModeLive {
		word = "drift"
	}
	switch {
	case d.Mode != reconciler.ModeLive && d.From != "" && d.To != "":
		return fmt.Sprintf("tandem plan for %s → %s", codeSpan(shortRev(d.From)), codeSpan(shortRev(d.To)))
	case d.To != "":
		return fmt.Sprintf("tandem %s at %s", word, codeSpan(shortRev(d.To)))
	default:
		return "tandem " + word
	}
}

// mdTooLarge is the comment when not even the summary fits the limit.
func mdTooLarge(d *reconciler.DiffReport, title string, limit int) string {
	s := Marker + "\n### " + heading(d, title) + "\n\n" +
		"The report is too large for a comment of at most " + strconv.Itoa(limit) +
		" bytes; run `tandem diff` locally to see it.\n"
	if len(s) > limit {
		s = clip(s, limit-1) // only a title of kilobytes gets here; no fence or <details> to break
	}
	return s
}

// section is one changed release's <details> block.
type section struct {
	summary string   // the <summary> line's inner HTML
	notes   []string // Markdown list lines
	lines   []string // the diff fence's content lines
	fence   string
}

func newSection(c reconciler.ClusterDiff, name string, r reconciler.ReleaseDiff) section {
	s := section{summary: "<b>" + html.EscapeString(c.Name) + "</b> · " + html.EscapeString(name)}
	switch r.Change {
	case reconciler.ChangeAdded, reconciler.ChangeRemoved:
		s.summary += " · " + string(r.Change)
	}
	if n := r.ChangedObjects(); n > 0 {
		s.summary += " · " + plural(n, "object")
	}
	for _, n := range r.Notes {
		s.notes = append(s.notes, "- "+inert(oneLine(n)))
	}
	for _, o := range r.Objects {
		if o.Change == reconciler.ChangeUnchanged {
			continue
		}
		s.lines = append(s.lines, " # "+o.Label()+objectSuffix(o.Change))
		for _, l := range diffLines(o.Diff) {
			s.lines = append(s.lines, clip(l, maxLineBytes))
		}
	}
	s.fence = fenceFor(s.lines)
	return s
}

// open is everything before the first diff line.
func (s section) open() string {
	var b strings.Builder
	b.WriteString("<details><summary>" + s.summary + "</summary>\n\n")
	for _, n := range s.notes {
		b.WriteString(n + "\n")
	}
	if len(s.notes) > 0 {
		b.WriteString("\n")
	}
	if len(s.lines) > 0 {
		b.WriteString(s.fence + "diff\n")
	}
	return b.String()
}

// close is everything after the last shown diff line; omitted > 0 adds the note.
func (s section) close(omitted int) string {
	var b strings.Builder
	if len(s.lines) > 0 {
		b.WriteString(s.fence + "\n\n")
	}
	if omitted > 0 {
		fmt.Fprintf(&b, "_… %s more %s of this release's diff not shown; run `tandem diff` locally for all of it._\n\n",
			thousands(omitted), pluralWord(omitted, "line"))
	}
	b.WriteString("</details>\n\n")
	return b.String()
}

// render is the block with the first n diff lines.
func (s section) render(n int) string {
	var b strings.Builder
	b.WriteString(s.open())
	for _, l := range s.lines[:n] {
		b.WriteString(l + "\n")
	}
	b.WriteString(s.close(len(s.lines) - n))
	return b.String()
}

// truncate renders as many whole diff lines as fit in room bytes, with the
// fence and <details> closed and a note; ok is false when not one line fits.
func (s section) truncate(room int) (string, bool) {
	fixed := len(s.open()) + len(s.close(len(s.lines))) // the note's count has at most this many digits
	used, n := fixed, 0
	for n < len(s.lines) && used+len(s.lines[n])+1 <= room {
		used += len(s.lines[n]) + 1
		n++
	}
	if n == 0 {
		return "", false
	}
	return s.render(n), true
}

// notShown lists releases left out, within capBytes: one line each while they
// fit, then a count of the rest.
func notShown(secs []section, capBytes int) string {
	if len(secs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("**Not shown** to keep this comment under the size limit; run `tandem diff` locally for these:\n\n")
	// The count line is as long as it can get (the count only shrinks), so it always fits.
	more := len(moreReleases(len(secs)))
	for i, s := range secs {
		line := "- " + s.summary + "\n"
		need := len(line)
		if i < len(secs)-1 {
			need += more
		}
		if b.Len()+need > capBytes {
			b.WriteString(moreReleases(len(secs) - i))
			break
		}
		b.WriteString(line)
	}
	return b.String()
}

func moreReleases(n int) string {
	return fmt.Sprintf("- … and %d more %s\n", n, pluralWord(n, "release"))
}

// fenceFor returns a backtick fence longer than any run of backticks in the
// content, so a line like " ```" inside a diff cannot close it.
func fenceFor(lines []string) string {
	longest := 0
	for _, l := range lines {
		run := 0
		for i := 0; i < len(l); i++ {
			if l[i] == '`' {
				run++
				longest = max(longest, run)
			} else {
				run = 0
			}
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}

// codeSpan quotes s as inline code whatever backticks it holds.
func codeSpan(s string) string {
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	ticks := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return ticks + s + ticks
}

// zwsp is a zero-width space: it splits an @mention, #reference, scheme://
// or www. into text that looks the same but that no forge links.
const zwsp = "&#8203;"

// inert is s as Markdown text that is shown as written and makes nothing
// live: no HTML, no link (its brackets are entities, and a bare
// https:// or www. is split so no autolink forms), no @mention (which would
// notify a person or team), no #123 or owner/repo#123 reference (which
// would leave a backlink there). Notes carry text from the clusters (a Helm
// release's chart name and status, written by whoever may write a release
// record) and from pull requests (a chart's name), into an issue or a
// comment a bot posts.
func inert(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&#34;")
		case '\'':
			b.WriteString("&#39;")
		case '[':
			b.WriteString("&#91;")
		case ']':
			b.WriteString("&#93;")
		case '@', '#':
			b.WriteRune(r)
			b.WriteString(zwsp)
		case ':':
			b.WriteRune(r)
			if strings.HasPrefix(s[i+1:], "//") {
				b.WriteString(zwsp)
			}
		case '.':
			if i >= 3 && strings.EqualFold(s[i-3:i], "www") {
				b.WriteString(zwsp)
			}
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cell escapes text for a table cell.
func cell(s string) string {
	return strings.ReplaceAll(html.EscapeString(s), "|", `\|`)
}

// shortRev shortens a full commit SHA to 7 characters; refs stay as they are.
func shortRev(rev string) string {
	if len(rev) < 12 {
		return rev
	}
	for _, r := range rev {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return rev
		}
	}
	return rev[:7]
}

// clip cuts s to at most n bytes at a character boundary, saying how much it cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	suffix := fmt.Sprintf(" …(%s more bytes)", thousands(len(s)))
	cut := max(0, n-len(suffix))
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf(" …(%s more bytes)", thousands(len(s)-cut))
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func verb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func pluralWord(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}

// thousands formats n with comma separators: 1,234.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
