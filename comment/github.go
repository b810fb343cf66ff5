package comment

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultGitHubURL is github.com's REST API root.
const DefaultGitHubURL = "https://api.github.com"

// MaxGitHubComment is the most characters GitHub takes in a comment; it
// answers a longer one with 422.
const MaxGitHubComment = 65536

// GitHub keeps a sticky comment on a GitHub pull request.
type GitHub struct {
	// BaseURL is the REST API root: https://api.github.com when empty;
	// for GitHub Enterprise Server https://HOST/api/v3.
	BaseURL string
	// Token is sent as a bearer token. It needs pull-requests: write (or issues: write).
	Token string
	// Repo is OWNER/REPO.
	Repo string
	// HTTPClient defaults to http.DefaultClient.
	HTTPClient *http.Client
	// Timeout bounds each request, its response included; zero means
	// DefaultRequestTimeout.
	Timeout time.Duration
	// Author is the login whose comments are tandem's (github-actions[bot] for
	// Actions' GITHUB_TOKEN). Empty means the token's own identity, asked of
	// the API. Comments by anyone else are never edited.
	Author string
	// Retry bounds retries of refused requests; zero means DefaultRetryOptions.
	Retry RetryOptions
}

type ghUser struct {
	Login string `json:"login"`
	ID    int64  `json:"id"`
}

type ghComment struct {
	ID      int64   `json:"id"`
	Body    string  `json:"body"`
	HTMLURL string  `json:"html_url"`
	User    *ghUser `json:"user"`
}

// Upsert makes the pull request carry exactly one comment of tandem's holding
// marker, with body as its text: it edits the first comment holding marker
// written by Author (or the token's own identity), or creates one. Comments by
// anyone else are never edited. body gets marker as a first line if it lacks it.
func (g GitHub) Upsert(ctx context.Context, pr int, body, marker string) (Result, error) {
	where := fmt.Sprintf("github %s#%d", g.Repo, pr)
	owner, name, ok := strings.Cut(g.Repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return Result{}, fmt.Errorf("github repository %q: want OWNER/REPO", g.Repo)
	}
	if err := checkArgs(pr, body, marker); err != nil {
		return Result{}, fmt.Errorf("%s: %w", where, err)
	}
	body = withMarker(body, marker)
	if n := utf8.RuneCountInString(body); n > MaxGitHubComment {
		return Result{}, fmt.Errorf("%s: the comment is %d characters, more than the %d GitHub allows", where, n, MaxGitHubComment)
	}
	base := strings.TrimRight(g.BaseURL, "/")
	if base == "" {
		base = DefaultGitHubURL
	}
	c, err := newClient(g.HTTPClient, g.Timeout, g.Retry, base, g.Token, func(h http.Header) {
		h.Set("Authorization", "Bearer "+g.Token)
		h.Set("Accept", "application/vnd.github+json")
		h.Set("X-GitHub-Api-Version", "2022-11-28")
	})
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", where, err)
	}
	t := ghThread{c: c, base: base, repo: base + "/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(name), pr: pr}
	res, err := upsert(ctx, t, c.retry, strings.TrimSpace(g.Author), body, marker)
	if err != nil {
		return res, fmt.Errorf("%s: %w", where, err)
	}
	return res, nil
}

// ghThread is a pull request's issue comments.
type ghThread struct {
	c    client
	base string
	repo string
	pr   int
}

func (ghThread) noun() string { return "comment" }

// whoami asks GET /user, which answers for user tokens (classic and
// fine-grained personal access tokens, OAuth). An App installation token
// (Actions' GITHUB_TOKEN is one) gets 403 there; GraphQL's viewer is then the
// App's bot user (github-actions[bot] for GITHUB_TOKEN), which authors its comments.
func (t ghThread) whoami(ctx context.Context) (identity, error) {
	var u ghUser
	_, err := t.c.do(ctx, http.MethodGet, t.base+"/user", nil, &u)
	if err == nil {
		if u.Login == "" {
			return identity{}, fmt.Errorf("GET %s/user: no login in the answer", t.base)
		}
		return identity{Login: u.Login, ID: u.ID}, nil
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden {
		return identity{}, err
	}
	var out struct {
		Data struct {
			Viewer struct {
				Login string `json:"login"`
			} `json:"viewer"`
		} `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	gql := graphQLURL(t.base)
	if _, gerr := t.c.do(ctx, http.MethodPost, gql, map[string]string{"query": "query { viewer { login } }"}, &out); gerr != nil {
		return identity{}, fmt.Errorf("%w; then GraphQL viewer: %w", err, gerr)
	}
	if len(out.Errors) > 0 {
		return identity{}, fmt.Errorf("%w; then POST %s: viewer: %s", err, gql, t.c.redact(shorten(out.Errors[0].Message)))
	}
	if out.Data.Viewer.Login == "" {
		return identity{}, fmt.Errorf("%w; then POST %s: no viewer login in the answer", err, gql)
	}
	// The login only: a bot's databaseId in GraphQL may number it in another
	// table than the user id REST gives its comments. Logins are unique, and a
	// "[bot]" login cannot be taken by a person.
	return identity{Login: out.Data.Viewer.Login}, nil
}

// graphQLURL is the GraphQL endpoint next to a REST root: https://api.github.com/graphql,
// and https://HOST/api/graphql for GitHub Enterprise Server's https://HOST/api/v3.
func graphQLURL(base string) string {
	if b, ok := strings.CutSuffix(base, "/api/v3"); ok {
		return b + "/api/graphql"
	}
	return base + "/graphql"
}

// list pages through the comments, oldest first (GitHub's order).
func (t ghThread) list(ctx context.Context) ([]note, error) {
	var out []note
	next := t.repo + "/issues/" + strconv.Itoa(t.pr) + "/comments?per_page=100"
	for page := 0; next != ""; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("more than %d pages of comments", maxPages)
		}
		var comments []ghComment
		h, err := t.c.do(ctx, http.MethodGet, next, nil, &comments)
		if err != nil {
			return nil, err
		}
		for _, c := range comments {
			n := note{ID: c.ID, Body: c.Body}
			if c.User != nil {
				n.AuthorLogin, n.AuthorID = c.User.Login, c.User.ID
			}
			out = append(out, n)
		}
		link := nextLink(h)
		if link == "" {
			break
		}
		if next, err = t.c.sameOrigin(next, link); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t ghThread) edit(ctx context.Context, id int64, body string) (Result, error) {
	var out ghComment
	_, err := t.c.do(ctx, http.MethodPatch, t.repo+"/issues/comments/"+strconv.FormatInt(id, 10), map[string]string{"body": body}, &out)
	return Result{ID: out.ID, URL: out.HTMLURL}, err
}

func (t ghThread) create(ctx context.Context, body string) (Result, error) {
	var out ghComment
	_, err := t.c.do(ctx, http.MethodPost, t.repo+"/issues/"+strconv.Itoa(t.pr)+"/comments", map[string]string{"body": body}, &out)
	return Result{ID: out.ID, URL: out.HTMLURL}, err
}

func (t ghThread) remove(ctx context.Context, id int64) error {
	_, err := t.c.do(ctx, http.MethodDelete, t.repo+"/issues/comments/"+strconv.FormatInt(id, 10), nil, nil)
	return err
}
