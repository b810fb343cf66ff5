package comment

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultGitHubURL is github.com's REST API root.
const DefaultGitHubURL = "https://api.github.com"

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
}

type ghComment struct {
	ID      int64  `json:"id"`
	Body    string `json:"body"`
	HTMLURL string `json:"html_url"`
}

// Upsert makes the pull request carry exactly one comment holding marker, with
// body as its text: it edits the first existing comment whose body contains
// marker, or creates one. body gets marker as a first line if it lacks it.
func (g GitHub) Upsert(ctx context.Context, pr int, body, marker string) (Result, error) {
	where := fmt.Sprintf("github %s#%d", g.Repo, pr)
	owner, name, ok := strings.Cut(g.Repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return Result{}, fmt.Errorf("github repository %q: want OWNER/REPO", g.Repo)
	}
	if err := checkArgs(pr, body, marker); err != nil {
		return Result{}, fmt.Errorf("%s: %w", where, err)
	}
	base := strings.TrimRight(g.BaseURL, "/")
	if base == "" {
		base = DefaultGitHubURL
	}
	c, err := newClient(g.HTTPClient, g.Timeout, base, g.Token, func(h http.Header) {
		h.Set("Authorization", "Bearer "+g.Token)
		h.Set("Accept", "application/vnd.github+json")
		h.Set("X-GitHub-Api-Version", "2022-11-28")
	})
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", where, err)
	}
	repo := base + "/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(name)
	body = withMarker(body, marker)

	found, err := g.find(ctx, c, repo+"/issues/"+strconv.Itoa(pr)+"/comments?per_page=100", marker)
	if err != nil {
		return Result{}, fmt.Errorf("%s: list comments: %w", where, err)
	}
	var out ghComment
	if found != nil {
		if _, err := c.do(ctx, http.MethodPatch, repo+"/issues/comments/"+strconv.FormatInt(found.ID, 10), map[string]string{"body": body}, &out); err != nil {
			return Result{}, fmt.Errorf("%s: edit comment %d: %w", where, found.ID, err)
		}
		return Result{Action: ActionUpdated, ID: out.ID, URL: out.HTMLURL}, nil
	}
	if _, err := c.do(ctx, http.MethodPost, repo+"/issues/"+strconv.Itoa(pr)+"/comments", map[string]string{"body": body}, &out); err != nil {
		return Result{}, fmt.Errorf("%s: create comment: %w", where, err)
	}
	return Result{Action: ActionCreated, ID: out.ID, URL: out.HTMLURL}, nil
}

// find pages through the comments (oldest first) until one contains marker.
func (g GitHub) find(ctx context.Context, c client, next, marker string) (*ghComment, error) {
	for page := 0; next != ""; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("more than %d pages of comments", maxPages)
		}
		var comments []ghComment
		h, err := c.do(ctx, http.MethodGet, next, nil, &comments)
		if err != nil {
			return nil, err
		}
		for i := range comments {
			if strings.Contains(comments[i].Body, marker) {
				return &comments[i], nil
			}
		}
		link := nextLink(h)
		if link == "" {
			break
		}
		if next, err = c.sameOrigin(next, link); err != nil {
			return nil, err
		}
	}
	return nil, nil
}
