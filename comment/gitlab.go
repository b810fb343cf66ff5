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

// DefaultGitLabURL is gitlab.com.
const DefaultGitLabURL = "https://gitlab.com"

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
}

type glNote struct {
	ID     int64  `json:"id"`
	Body   string `json:"body"`
	System bool   `json:"system"`
}

// Upsert makes the merge request carry exactly one note holding marker, with
// body as its text: it edits the first existing note (not a system note) whose
// body contains marker, or creates one. body gets marker as a first line if it
// lacks it.
func (g GitLab) Upsert(ctx context.Context, mr int, body, marker string) (Result, error) {
	where := fmt.Sprintf("gitlab %s!%d", g.Project, mr)
	project := strings.Trim(g.Project, "/")
	if project == "" {
		return Result{}, fmt.Errorf("gitlab project %q: want a numeric id or group/name", g.Project)
	}
	if err := checkArgs(mr, body, marker); err != nil {
		return Result{}, fmt.Errorf("%s: %w", where, err)
	}
	base := strings.TrimRight(g.BaseURL, "/")
	if base == "" {
		base = DefaultGitLabURL
	}
	c, err := newClient(g.HTTPClient, g.Timeout, base, g.Token, func(h http.Header) {
		h.Set("PRIVATE-TOKEN", g.Token)
		h.Set("Accept", "application/json")
	})
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", where, err)
	}
	// A path is one URL segment with its slashes escaped: group%2Fname.
	notes := base + "/api/v4/projects/" + url.PathEscape(project) + "/merge_requests/" + strconv.Itoa(mr) + "/notes"
	body = withMarker(body, marker)

	found, err := g.find(ctx, c, notes+"?per_page=100&sort=asc&order_by=created_at", marker)
	if err != nil {
		return Result{}, fmt.Errorf("%s: list notes: %w", where, err)
	}
	var out glNote
	if found != nil {
		if _, err := c.do(ctx, http.MethodPut, notes+"/"+strconv.FormatInt(found.ID, 10), map[string]string{"body": body}, &out); err != nil {
			return Result{}, fmt.Errorf("%s: edit note %d: %w", where, found.ID, err)
		}
		return Result{Action: ActionUpdated, ID: out.ID, URL: g.noteURL(base, project, mr, out.ID)}, nil
	}
	if _, err := c.do(ctx, http.MethodPost, notes, map[string]string{"body": body}, &out); err != nil {
		return Result{}, fmt.Errorf("%s: create note: %w", where, err)
	}
	return Result{Action: ActionCreated, ID: out.ID, URL: g.noteURL(base, project, mr, out.ID)}, nil
}

// find pages through the notes until one contains marker. GitLab paginates
// with X-Next-Page (offset pagination) and also sends a Link header; either works.
func (g GitLab) find(ctx context.Context, c client, next, marker string) (*glNote, error) {
	for page := 0; next != ""; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("more than %d pages of notes", maxPages)
		}
		var notes []glNote
		h, err := c.do(ctx, http.MethodGet, next, nil, &notes)
		if err != nil {
			return nil, err
		}
		for i := range notes {
			if !notes[i].System && strings.Contains(notes[i].Body, marker) {
				return &notes[i], nil
			}
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
			if next, err = c.sameOrigin(cur, link); err != nil {
				return nil, err
			}
		}
	}
	return nil, nil
}

// noteURL is the note's web address; it can only be derived from a project path, not an id.
func (g GitLab) noteURL(base, project string, mr int, id int64) string {
	if _, err := strconv.ParseInt(project, 10, 64); err == nil {
		return ""
	}
	return fmt.Sprintf("%s/%s/-/merge_requests/%d#note_%d", base, project, mr, id)
}
