package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tandem-gitops/tandem/cmd/tandem/internal/diffview"
	"github.com/tandem-gitops/tandem/comment"
)

// maxCommentBody bounds what `tandem comment` reads; GitLab notes allow
// 1,000,000 characters, GitHub comments 65,536.
const maxCommentBody = 4 << 20

// commentFlags are the flags of `tandem comment`.
type commentFlags struct {
	github    string
	githubURL string
	pr        int
	gitlab    string
	gitlabURL string
	mr        int
	file      string
	marker    string
	author    string
	failed    bool
	details   string
}

func newCommentCmd(g *globalFlags, s streams) *cobra.Command {
	f := &commentFlags{}
	cmd := &cobra.Command{
		Use:   "comment (--github OWNER/REPO --pr N | --gitlab PROJECT --mr N) [--file F | --plan-failed]",
		Short: "Post a report as the one sticky comment of a pull or merge request, editing it on later runs",
		Long: `comment reads a Markdown report (from --file, or stdin) and keeps it as a single comment on a
GitHub pull request or a GitLab merge request: tandem's own comment holding the report's hidden
marker is edited if there is one, else created. Every push to the change replaces the report in place.

  tandem diff --against origin/main -o markdown > plan.md && tandem comment --github "$GITHUB_REPOSITORY" --pr 7 --file plan.md

Only comments written by the token's own identity are tandem's: anyone can write the marker into a
comment of theirs, and such a comment is never edited. The identity is asked of the API (GitHub:
GET /user, or GraphQL's viewer for an App installation token such as Actions' GITHUB_TOKEN, which
writes as github-actions[bot]; GitLab: GET /user, which answers for personal, project and group
access tokens); --author LOGIN names it instead. Older duplicates of tandem's own comment (two runs
that raced) are deleted. 429, rate limits and 5xx answers are retried, up to 4 attempts, waiting as
the API asks (Retry-After) but never more than a minute at a time. The token is sent only to the
API's own host: a redirect elsewhere fails the command.

When the plan could not be made (tandem diff failed), run comment with --plan-failed: the comment
then says the plan failed, links the CI job (--details-url, by default the run's address from
GitHub Actions' or GitLab CI's variables), and no longer shows the previous plan, which described an
earlier push. With --file, a report the failed diff still wrote (clusters that could not be diffed
say why) follows; without a tandem report in it, nothing of the file is posted.

The token comes from GITHUB_TOKEN (pull-requests: write) or GITLAB_TOKEN (a project or personal
access token with the api scope). The API address defaults to GITHUB_API_URL or CI_SERVER_URL when
CI sets them, else to github.com or gitlab.com.

The body must hold tandem's marker (` + diffview.Marker + `), so that unrelated text is not posted
by mistake; with --marker, any text is posted and that marker identifies its comment instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch g.output {
			case "", "text", "json":
			default:
				return fmt.Errorf("unknown output format %q (want text or json)", g.output)
			}
			if err := f.validate(); err != nil {
				return err
			}
			marker := diffview.Marker
			if f.marker != "" {
				marker = hiddenMarker(f.marker)
			}
			var body string
			if f.failed {
				details, err := f.detailsURL()
				if err != nil {
					return err
				}
				report, err := f.readReport(s.In, marker)
				if err != nil {
					return err
				}
				body = planFailedBody(marker, details, f.commit(), report)
			} else {
				var err error
				if body, err = f.readBody(s.In); err != nil {
					return err
				}
				if f.marker == "" && !strings.Contains(body, marker) {
					return fmt.Errorf("the comment body has no %s line: is it the output of `tandem diff -o markdown`? (use --marker to post other text)", marker)
				}
			}

			ctx := cmd.Context()
			var res comment.Result
			var where string
			if f.github != "" {
				token, err := tokenFromEnv("GITHUB_TOKEN")
				if err != nil {
					return err
				}
				where = fmt.Sprintf("%s#%d", f.github, f.pr)
				gh := comment.GitHub{BaseURL: firstNonEmpty(f.githubURL, os.Getenv("GITHUB_API_URL")), Token: token, Repo: f.github, Author: f.author}
				if res, err = gh.Upsert(ctx, f.pr, body, marker); err != nil {
					return commentHint(err, githubHints)
				}
			} else {
				token, err := tokenFromEnv("GITLAB_TOKEN")
				if err != nil {
					return err
				}
				where = fmt.Sprintf("%s!%d", f.gitlab, f.mr)
				gl := comment.GitLab{BaseURL: firstNonEmpty(f.gitlabURL, os.Getenv("CI_SERVER_URL")), Token: token, Project: f.gitlab, Author: f.author}
				if res, err = gl.Upsert(ctx, f.mr, body, marker); err != nil {
					return commentHint(err, gitlabHints)
				}
			}
			if g.output == "json" {
				return writeJSON(s.Out, res)
			}
			line := fmt.Sprintf("%s comment %d on %s", res.Action, res.ID, where)
			if res.Author != "" {
				line += " as " + res.Author
			}
			if res.URL != "" {
				line += " (" + res.URL + ")"
			}
			if len(res.Removed) > 0 {
				line += fmt.Sprintf("; deleted %d older duplicate(s) of it: %v", len(res.Removed), res.Removed)
			}
			_, err := fmt.Fprintln(s.Out, line)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.github, "github", "", "GitHub repository OWNER/REPO")
	fl.IntVar(&f.pr, "pr", 0, "pull request number (with --github)")
	fl.StringVar(&f.githubURL, "github-url", "", "GitHub REST API root, https://HOST/api/v3 for GitHub Enterprise Server (default: $GITHUB_API_URL or https://api.github.com)")
	fl.StringVar(&f.gitlab, "gitlab", "", "GitLab project: numeric id or full path group/name")
	fl.IntVar(&f.mr, "mr", 0, "merge request IID (with --gitlab)")
	fl.StringVar(&f.gitlabURL, "gitlab-url", "", "GitLab instance address (default: $CI_SERVER_URL or https://gitlab.com)")
	fl.StringVarP(&f.file, "file", "f", "", "read the comment body from this file instead of stdin (- for stdin)")
	fl.StringVar(&f.author, "author", "", "the login (GitHub) or username (GitLab) whose comments are tandem's (default: the token's own identity, asked of the API)")
	fl.BoolVar(&f.failed, "plan-failed", false, "the plan could not be made: replace the comment with a \"plan failed\" notice (with --file, followed by the report the failed diff wrote, if any)")
	fl.StringVar(&f.details, "details-url", "", "with --plan-failed, where to read why: the CI job (default: from $GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID or $CI_JOB_URL)")
	fl.StringVar(&f.marker, "marker", "", "identify the sticky comment by this marker instead of tandem's (wrapped in <!-- --> unless it is an HTML comment); allows bodies without tandem's marker")
	return cmd
}

func (f *commentFlags) validate() error {
	switch {
	case f.github != "" && f.gitlab != "":
		return errors.New("--github and --gitlab exclude each other")
	case f.github != "":
		if f.pr <= 0 {
			return errors.New("--github needs --pr N, the pull request number")
		}
		if f.mr != 0 || f.gitlabURL != "" {
			return errors.New("--mr and --gitlab-url go with --gitlab, not --github")
		}
	case f.gitlab != "":
		if f.mr <= 0 {
			return errors.New("--gitlab needs --mr N, the merge request IID")
		}
		if f.pr != 0 || f.githubURL != "" {
			return errors.New("--pr and --github-url go with --github, not --gitlab")
		}
	default:
		return errors.New("say where to comment: --github OWNER/REPO --pr N, or --gitlab PROJECT --mr N")
	}
	if f.details != "" && !f.failed {
		return errors.New("--details-url goes with --plan-failed")
	}
	return nil
}

// readBody reads the comment from --file or stdin, refusing an empty or oversized one.
func (f *commentFlags) readBody(stdin io.Reader) (string, error) {
	from, r := "stdin", stdin
	if f.file != "" && f.file != "-" {
		file, err := os.Open(f.file)
		if err != nil {
			return "", fmt.Errorf("comment body: %w", err)
		}
		defer file.Close()
		from, r = f.file, file
	}
	if r == nil {
		return "", errors.New("comment body: no stdin")
	}
	b, err := io.ReadAll(io.LimitReader(r, maxCommentBody+1))
	if err != nil {
		return "", fmt.Errorf("comment body from %s: %w", from, err)
	}
	if len(b) > maxCommentBody {
		return "", fmt.Errorf("comment body from %s: larger than %d bytes", from, maxCommentBody)
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", fmt.Errorf("comment body from %s is empty", from)
	}
	return string(b), nil
}

// hiddenMarker wraps a marker in an HTML comment, so it does not show in the rendered comment.
func hiddenMarker(m string) string {
	m = strings.TrimSpace(m)
	if strings.HasPrefix(m, "<!--") && strings.HasSuffix(m, "-->") {
		return m
	}
	return "<!-- " + m + " -->"
}

// tokenFromEnv reads an API token; the error names the variable, never a value.
func tokenFromEnv(name string) (string, error) {
	t := strings.TrimSpace(os.Getenv(name))
	if t == "" {
		return "", fmt.Errorf("%s is not set: tandem comment needs an API token that may write comments", name)
	}
	return t, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// forgeHints say, per forge, what to do about the answers an on-call
// engineer meets when a CI job's comment step fails.
type forgeHints struct {
	author, rejected, cannotWrite, notFound string
}

var (
	githubHints = forgeHints{
		author:      "pass --author: github-actions[bot] for Actions' GITHUB_TOKEN, APP-SLUG[bot] for a GitHub App's token",
		rejected:    "GITHUB_TOKEN was rejected: expired, revoked, or not a token of this GitHub (--github-url names GitHub Enterprise Server); --author does not help",
		cannotWrite: "the token may not write comments here: Actions' GITHUB_TOKEN needs `permissions: pull-requests: write`, and a pull request from a fork gets a read-only one",
		notFound:    "GitHub answers 404 for a repository or pull request the token cannot see: check --github, --pr and the token's repository access",
	}
	gitlabHints = forgeHints{
		author:      "pass --author: the username of the token's user; a project access token's bot user is shown under Settings > Members",
		rejected:    "GITLAB_TOKEN was rejected: expired, revoked, or not a token of this GitLab (--gitlab-url); --author does not help",
		cannotWrite: "the token may not write notes here: it needs the api scope and at least the Reporter role in the project",
		notFound:    "GitLab answers 404 for a project or merge request the token cannot see: check --gitlab, --mr and the token's membership",
	}
)

// commentHint adds to a failed comment's error what to do about it: name the
// author when the token's identity could not be found out, or what the
// API's refusal means for the token.
func commentHint(err error, h forgeHints) error {
	var apiErr *comment.APIError
	if errors.As(err, &apiErr) && apiErr.AskedWait == 0 {
		switch {
		case apiErr.StatusCode == http.StatusUnauthorized:
			return fmt.Errorf("%w\n(%s)", err, h.rejected)
		case apiErr.StatusCode == http.StatusForbidden && apiErr.Method != http.MethodGet && !strings.HasSuffix(apiErr.URL, "/graphql") &&
			!strings.Contains(strings.ToLower(apiErr.Message), "rate limit"):
			return fmt.Errorf("%w\n(%s)", err, h.cannotWrite)
		case apiErr.StatusCode == http.StatusNotFound && apiErr.Method == http.MethodGet && !strings.HasSuffix(apiErr.URL, "/user"):
			return fmt.Errorf("%w\n(%s)", err, h.notFound)
		}
	}
	var connErr *comment.ConnError
	if errors.As(err, &connErr) || (errors.As(err, &apiErr) && (apiErr.StatusCode >= 500 || apiErr.StatusCode == http.StatusTooManyRequests || apiErr.AskedWait > 0)) {
		return err // the API was unreachable or busy: naming the author would not help
	}
	var ae *comment.AuthorError
	if errors.As(err, &ae) {
		return fmt.Errorf("%w\n(%s)", err, h.author)
	}
	return err
}

// maxFailedComment bounds the plan-failed comment: GitHub refuses comments
// over 65,536 characters.
const maxFailedComment = 65536

// planFailedBody is the comment that replaces the plan when no plan could be
// made for the latest push: the plan that was there described an earlier push
// and must not look current. report, when not empty, is a tandem report the
// failed run still wrote (clusters that could not be diffed say why); it
// follows the notice without its marker line. Nothing but a tandem report is
// posted: a failed command's other output is not for a public comment.
func planFailedBody(marker, detailsURL, commit, report string) string {
	var b strings.Builder
	b.WriteString(marker + "\n### ⚠ tandem plan failed")
	if commit != "" {
		b.WriteString(" for `" + commit + "`")
	}
	b.WriteString("\n\n**No plan could be made for this push**, so there is none here: the plan this comment showed " +
		"before described an earlier push and has been removed. Do not merge on it.\n\n")
	if detailsURL != "" {
		b.WriteString("The CI job's log says why: <" + detailsURL + ">\n")
	} else {
		b.WriteString("The CI job's log says why.\n")
	}
	report = strings.TrimSpace(strings.Replace(report, marker, "", 1))
	if report == "" {
		return b.String()
	}
	const intro = "\n---\n\nWhat the failed run reported:\n\n"
	if b.Len()+len(intro)+len(report)+1 > maxFailedComment {
		b.WriteString("\nThe report the failed run wrote is too long to follow here; it is in the job's output.\n")
		return b.String()
	}
	b.WriteString(intro + report + "\n")
	return b.String()
}

// readReport reads what a failed `tandem diff` left in --file (stdin only
// with --file -): a missing or empty file is no report, and so is text
// without the marker.
func (f *commentFlags) readReport(stdin io.Reader, marker string) (string, error) {
	if f.file == "" {
		return "", nil
	}
	if f.file != "-" {
		if _, err := os.Stat(f.file); errors.Is(err, fs.ErrNotExist) {
			return "", nil // the diff did not get as far as writing it
		}
	}
	body, err := f.readBody(stdin)
	if err != nil {
		if strings.HasSuffix(err.Error(), " is empty") {
			return "", nil
		}
		return "", err
	}
	if !strings.Contains(body, marker) {
		return "", nil
	}
	return body, nil
}

// detailsURL is --details-url, or the CI run's address from the variables
// GitHub Actions and GitLab CI set.
func (f *commentFlags) detailsURL() (string, error) {
	u := f.details
	from := "--details-url"
	if u == "" {
		if f.github != "" {
			server, repo, run := os.Getenv("GITHUB_SERVER_URL"), os.Getenv("GITHUB_REPOSITORY"), os.Getenv("GITHUB_RUN_ID")
			if server != "" && repo != "" && run != "" {
				u, from = strings.TrimRight(server, "/")+"/"+repo+"/actions/runs/"+run, "$GITHUB_SERVER_URL, $GITHUB_REPOSITORY and $GITHUB_RUN_ID"
			}
		} else if v := os.Getenv("CI_JOB_URL"); v != "" {
			u, from = v, "$CI_JOB_URL"
		}
	}
	if u == "" {
		return "", nil
	}
	p, err := url.Parse(u)
	if err == nil && p.User != nil {
		// Posted in a public comment: a password or token in it would be published.
		return "", fmt.Errorf("%s %q: holds credentials, which the comment would publish; want an http(s) URL without user:password@", from, p.Redacted())
	}
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || strings.ContainsAny(u, " <>\t\r\n") {
		return "", fmt.Errorf("%s %q: want an http(s) URL", from, u)
	}
	return u, nil
}

// commit is the pushed commit CI built, short, from $GITHUB_SHA or $CI_COMMIT_SHA.
func (f *commentFlags) commit() string {
	v := os.Getenv("CI_COMMIT_SHA")
	if f.github != "" {
		v = os.Getenv("GITHUB_SHA")
	}
	if len(v) < 7 || strings.Trim(v, "0123456789abcdef") != "" {
		return ""
	}
	return v[:7]
}
