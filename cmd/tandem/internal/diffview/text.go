package diffview

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/tandem-gitops/tandem/reconciler"
)

var errNoReport = errors.New("no diff report")

// JSON writes the report as indented JSON: the schema of `tandem diff -o json`.
// Clusters keep the report's order.
func JSON(w io.Writer, d *reconciler.DiffReport) error {
	if d == nil {
		return errNoReport
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // diffs hold <, > and & that are easier to read unescaped
	if err := enc.Encode(d); err != nil {
		return fmt.Errorf("write diff report as json: %w", err)
	}
	return nil
}

// Text writes the report for a terminal, without colours: one line per
// changed release (or "no differences" per cluster), then each changed
// object's kind and namespace/name and its diff, indented.
//
//	green (standby)  release web  1 object changed
//	  Deployment shop/web
//	    @@ -20,7 +20,7 @@
//	-         image: registry.local/web:2.1
//	+         image: registry.local/web:2.2
//	blue (active)    no differences
func Text(w io.Writer, d *reconciler.DiffReport) error {
	if d == nil {
		return errNoReport
	}
	ew := &errWriter{w: w}
	cs := activeFirst(d.Clusters)
	if len(cs) == 0 {
		ew.printf("no clusters\n")
	}
	width := 0
	for _, c := range cs {
		width = max(width, utf8.RuneCountInString(clusterLabel(c)))
	}
	for _, c := range cs {
		label := clusterLabel(c) + strings.Repeat(" ", width-utf8.RuneCountInString(clusterLabel(c))) + "  "
		if c.Error != "" {
			ew.printf("%serror: %s\n", label, sanitize(oneLine(c.Error)))
		}
		names := releaseLabels(c.Releases)
		changed := 0
		for i, r := range c.Releases {
			if !r.Changed() {
				continue
			}
			changed++
			ew.printf("%srelease %s  %s\n", label, sanitize(names[i]), releasePhrase(r))
			for _, n := range r.Notes {
				ew.printf("  note: %s\n", sanitize(oneLine(n)))
			}
			for _, o := range r.Objects {
				if o.Change == reconciler.ChangeUnchanged {
					continue
				}
				ew.printf("  %s%s\n", sanitize(o.Label()), objectSuffix(o.Change))
				for _, l := range diffLines(o.Diff) {
					ew.printf("%s\n", sanitize(textDiffLine(l)))
				}
			}
		}
		if g := c.Guard; g != nil && g.Change != reconciler.ChangeUnchanged {
			ew.printf("%sstandby guard  %s\n", label, g.Summary())
		}
		if changed == 0 && c.Error == "" {
			ew.printf("%sno differences\n", label)
		}
	}
	if ew.err != nil {
		return fmt.Errorf("write diff report: %w", ew.err)
	}
	return nil
}

// textDiffLine keeps a unified-diff line's marker in the first column and
// indents its content under the object's name.
func textDiffLine(l string) string {
	if l != "" && (l[0] == '+' || l[0] == '-' || l[0] == ' ') {
		return l[:1] + "   " + l[1:]
	}
	return "    " + l
}

func clusterLabel(c reconciler.ClusterDiff) string {
	if c.Role == "" {
		return c.Name
	}
	return c.Name + " (" + c.Role + ")"
}

// activeFirst orders clusters Active first, otherwise as given.
func activeFirst(in []reconciler.ClusterDiff) []reconciler.ClusterDiff {
	out := append([]reconciler.ClusterDiff(nil), in...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Role == "active" && out[j].Role != "active" })
	return out
}

// releaseLabels names each release by its name, or namespace/name where two
// releases of a cluster share a name.
func releaseLabels(rs []reconciler.ReleaseDiff) []string {
	count := map[string]int{}
	for _, r := range rs {
		count[r.Name]++
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Name
		if count[r.Name] > 1 && r.Namespace != "" {
			out[i] = r.Namespace + "/" + r.Name
		}
	}
	return out
}

// releasePhrase says how a release differs: "1 object changed", "added, 3 objects".
func releasePhrase(r reconciler.ReleaseDiff) string {
	n := r.ChangedObjects()
	switch r.Change {
	case reconciler.ChangeAdded, reconciler.ChangeRemoved:
		if n == 0 {
			return string(r.Change)
		}
		return string(r.Change) + ", " + plural(n, "object")
	default:
		if n == 0 {
			return "changed, no object differs"
		}
		return plural(n, "object") + " changed"
	}
}

func objectSuffix(c reconciler.Change) string {
	switch c {
	case reconciler.ChangeAdded, reconciler.ChangeRemoved:
		return " (" + string(c) + ")"
	}
	return ""
}

// diffLines splits a diff into lines without their newlines.
func diffLines(diff string) []string {
	if diff == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(diff, "\n"), "\n")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// sanitize makes control characters visible, so that text from a cluster
// cannot move the cursor or recolour the terminal.
func sanitize(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// errWriter keeps the first write error so a long run of prints checks once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
