package comment

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultGitLabURL is gitlab.com.
const DefaultGitLabURL = "https://gitlab.com"

// MaxGitLabNote is the most characters GitLab takes in a note.
const MaxGitLabNote = 1_000_000

// GitLab keeps a sticky note on a GitLab merge request.
type GitLab struct {
	// BaseURL is the instance's address (not its API root): https://gitlab.com when empty.
	BaseURL string
	// Token is a personal, project or group access token with the api scope,
	// sent as PRIVATE-TOKEN.
	Token string
	// Project is the numeric project id or its full path (group/subgroup/name);
	// Upsert escapes it.
	Project string
	// HTTPClient defaults to http.DefaultClient.
	HTTPClient *http.Client
	// Timeout bounds each request, its response included; zero means
	// DefaultRequestTimeout.
	Timeout time.Duration
	// Author is the username whose notes are tandem's. Empty means the
	// token's own user (GET /user; a project or group access token has a bot
	// user of its own). Notes by anyone else are never edited.
	Author string
	// Retry bounds retries of refused requests; zero means DefaultRetryOptions.
	Retry RetryOptions
}

type glUser struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
}

type glNote struct {
	ID     int64   `json:"id"`
	Body   string  `json:"body"`
	System bool    `json:"system"`
	Author *glUser `json:"author"`
}

// Upsert makes the merge request carry exactly one note of tandem's holding
// marker, with body as its text: it edits the first note holding marker
// written by Author (or the token's own user), or creates one. Notes by anyone
// else, and system notes, are never edited. body gets marker as a first line
// if it lacks it.
func (g GitLab) Upsert(ctx context.Context, mr int, body, marker string) (Result, error) {
	where := fmt.Sprintf("gitlab %s!%d", g.Project, mr)
	project := strings.Trim(g.Project, "/")
	if project == "" {
		return Result{}, fmt.Errorf("gitlab project %q: want a numeric id or group/name", g.Project)
	}
	if err := checkArgs(mr, body, marker); err != nil {
		return Result{}, fmt.Errorf("%s: %w", where, err)
	}
	body = withMarker(body, marker)
	if n := utf8.RuneCountInString(body); n > MaxGitLabNote {
		return Result{}, fmt.Errorf("%s: the note is %d characters, more than the %d GitLab allows", where, n, MaxGitLabNote)
	}
	base := strings.TrimRight(g.BaseURL, "/")
	if base == "" {
		base = DefaultGitLabURL
	}
	c, err := newClient(g.HTTPClient, g.Timeout, g.Retry, base, g.Token, func(h http.Header) {
		h.Set("PRIVATE-TOKEN", g.Token)
		h.Set("Accept", "application/json")
	})
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", where, err)
	}
	t := glThread{c: c, base: base, project: project, mr: mr,
		// A path is one URL segment with its slashes escaped: group%2Fname.
		notes: base + "/api/v4/projects/" + url.PathEscape(project) + "/merge_requests/" + strconv.Itoa(mr) + "/notes"}
	res, err := upsert(ctx, t, c.retry, strings.TrimSpace(g.Author), body, marker)
	if err != nil {
		return res, fmt.Errorf("%s: %w", where, err)
	}
	return res, nil
}

// glThread is a merge request's notes.
type glThread struct {
	c       client
	base    string
	project string
	mr      int
	notes   string
}

func (glThread) noun() string { return "note" }

// whoami asks GET /api/v4/user, which answers for personal, project and group
// access tokens (the latter two have a bot user of their own).
func (t glThread) whoami(ctx context.Context) (identity, error) {
	var u glUser
	if _, err := t.c.do(ctx, http.MethodGet, t.base+"/api/v4/user", nil, &u); err != nil {
		return identity{}, err
	}
	if u.Username == "" {
		return identity{}, fmt.Errorf("GET %s/api/v4/user: no username in the answer", t.base)
	}
	return identity{Login: u.Username, ID: u.ID}, nil
}

// list pages through the notes, oldest first. GitLab paginates with
// X-Next-Page (offset pagination) and also sends a Link header; either works.
func (t glThread) list(ctx context.Context) ([]note, error) {
	var out []note
	next := t.notes + "?per_page=100&sort=asc&order_by=created_at"
	for page := 0; next != ""; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("more than %d pages of notes", maxPages)
		}
		var notes []glNote
		h, err := t.c.do(ctx, http.MethodGet, next, nil, &notes)
		if err != nil {
			return nil, err
		}
		for _, gn := range notes {
			n := note{ID: gn.ID, Body: gn.Body, System: gn.System}
			if gn.Author != nil {
				n.AuthorLogin, n.AuthorID = gn.Author.Username, gn.Author.ID
			}
			out = append(out, n)
		}
		cur := next
		next = ""
		if p := strings.TrimSpace(h.Get("X-Next-Page")); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("X-Next-Page %q: not a page number", p)
			}
			u, err := url.Parse(cur)
			if err != nil {
				return nil, err
			}
			q := u.Query()
			q.Set("page", strconv.Itoa(n))
			u.RawQuery = q.Encode()
			next = u.String()
		} else if link := nextLink(h); link != "" {
			if next, err = t.c.sameOrigin(cur, link); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func (t glThread) edit(ctx context.Context, id int64, body string) (Result, error) {
	var out glNote
	_, err := t.c.do(ctx, http.MethodPut, t.notes+"/"+strconv.FormatInt(id, 10), map[string]string{"body": body}, &out)
	return Result{ID: out.ID, URL: noteURL(t.base, t.project, t.mr, out.ID)}, err
}

func (t glThread) create(ctx context.Context, body string) (Result, error) {
	var out glNote
	_, err := t.c.do(ctx, http.MethodPost, t.notes, map[string]string{"body": body}, &out)
	return Result{ID: out.ID, URL: noteURL(t.base, t.project, t.mr, out.ID)}, err
}

func (t glThread) remove(ctx context.Context, id int64) error {
	_, err := t.c.do(ctx, http.MethodDelete, t.notes+"/"+strconv.FormatInt(id, 10), nil, nil)
	return err
}

// noteURL is the note's web address; it can only be derived from a project path, not an id.
func noteURL(base, project string, mr int, id int64) string {
	if _, err := strconv.ParseInt(project, 10, 64); err == nil {
		return ""
	}
	return fmt.Sprintf("%s/%s/-/merge_requests/%d#note_%d", base, project, mr, id)
}
