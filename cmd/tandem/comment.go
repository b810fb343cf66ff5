package main

import (
	"errors"
	"fmt"
	"io"
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
}

func newCommentCmd(g *globalFlags, s streams) *cobra.Command {
	f := &commentFlags{}
	cmd := &cobra.Command{
		Use:   "comment (--github OWNER/REPO --pr N | --gitlab PROJECT --mr N) [--file F]",
		Short: "Post a report as the one sticky comment of a pull or merge request, editing it on later runs",
		Long: `comment reads a Markdown report (from --file, or stdin) and keeps it as a single comment on a
GitHub pull request or a GitLab merge request: the comment holding the report's hidden marker is
edited if there is one, else created. Every push to the change replaces the report in place.

  tandem diff --against origin/main -o markdown | tandem comment --github "$GITHUB_REPOSITORY" --pr 7

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
			body, err := f.readBody(s.In)
			if err != nil {
				return err
			}
			marker := diffview.Marker
			if f.marker != "" {
				marker = hiddenMarker(f.marker)
			} else if !strings.Contains(body, marker) {
				return fmt.Errorf("the comment body has no %s line: is it the output of `tandem diff -o markdown`? (use --marker to post other text)", marker)
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
				gh := comment.GitHub{BaseURL: firstNonEmpty(f.githubURL, os.Getenv("GITHUB_API_URL")), Token: token, Repo: f.github}
				res, err = gh.Upsert(ctx, f.pr, body, marker)
				if err != nil {
					return err
				}
			} else {
				token, err := tokenFromEnv("GITLAB_TOKEN")
				if err != nil {
					return err
				}
				where = fmt.Sprintf("%s!%d", f.gitlab, f.mr)
				gl := comment.GitLab{BaseURL: firstNonEmpty(f.gitlabURL, os.Getenv("CI_SERVER_URL")), Token: token, Project: f.gitlab}
				res, err = gl.Upsert(ctx, f.mr, body, marker)
				if err != nil {
					return err
				}
			}
			if g.output == "json" {
				return writeJSON(s.Out, res)
			}
			line := fmt.Sprintf("%s comment %d on %s", res.Action, res.ID, where)
			if res.URL != "" {
				line += " (" + res.URL + ")"
			}
			_, err = fmt.Fprintln(s.Out, line)
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
