package comment

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Findings of the review of issue 11 item 2 (notes/revcomment.md), each
// reproduced against the recording fakes before it was fixed.

// TestRacingRunAlreadyDeletedTheDuplicate: two runs of the same pull request
// see the same two comments of tandem's; both edit the first and delete the
// second. The second delete finds it gone (404): what the run wanted is
// done, so it must not fail the CI job.
func TestRacingRunAlreadyDeletedTheDuplicate(t *testing.T) {
	t.Run("github", func(t *testing.T) {
		f, srv := newFakeGitHub(t, "", "tok")
		f.seedAs("acme/shop#5", bot, marker+"\nrace one")
		f.seedAs("acme/shop#5", bot, marker+"\nrace two")
		// The racing run deletes 1002 first: the fake deletes it, then answers 404.
		f.inject(fault{method: "DELETE", path: "/repos/acme/shop/issues/comments/1002", status: http.StatusNotFound, body: `{"message":"Not Found"}`, after: true})
		res, err := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "acme/shop", HTTPClient: srv.Client()}.Upsert(context.Background(), 5, marker+"\nnow", marker)
		if err != nil {
			t.Fatalf("Upsert failed on a duplicate another run deleted: %v", err)
		}
		if res.ID != 1001 || res.Action != ActionUpdated {
			t.Errorf("Upsert = %+v, want comment 1001 updated", res)
		}
		if diff := cmp.Diff([]string{marker + "\nnow"}, f.withMarkerBodies("acme/shop#5")); diff != "" {
			t.Errorf("comments holding the marker (-want +got):\n%s", diff)
		}
	})
	t.Run("gitlab", func(t *testing.T) {
		f, srv := newFakeGitLab(t, "", "glpat-x")
		me := glBot
		f.seed("42!3", glNote{Body: marker + "\nrace one", Author: &me}, glNote{Body: marker + "\nrace two", Author: &me})
		f.inject(fault{method: "DELETE", path: "/api/v4/projects/42/merge_requests/3/notes/502", status: http.StatusNotFound, body: `{"message":"404 Not found"}`, after: true})
		if _, err := (GitLab{BaseURL: srv.URL, Token: "glpat-x", Project: "42", HTTPClient: srv.Client()}).Upsert(context.Background(), 3, marker+"\nnow", marker); err != nil {
			t.Fatalf("Upsert failed on a duplicate another run deleted: %v", err)
		}
		if diff := cmp.Diff([]string{marker + "\nnow"}, f.withMarkerBodies("42!3")); diff != "" {
			t.Errorf("notes holding the marker (-want +got):\n%s", diff)
		}
	})
}

// TestSharedIdentityQuotingTheMarkerIsNotOurs: Actions' GITHUB_TOKEN writes
// as github-actions[bot] for every workflow of the repository, so "written by
// the token's identity" does not make a comment tandem's. Another workflow
// that quotes a pull request's text ("you wrote: …") posts the marker under
// tandem's identity when the author puts it there. tandem writes the marker
// as its comment's first line; a comment where it is not the first line is
// someone else's, and is neither edited nor deleted.
func TestSharedIdentityQuotingTheMarkerIsNotOurs(t *testing.T) {
	f, srv := newFakeGitHub(t, "", "tok")
	actions := ghUser{Login: "github-actions[bot]", ID: 41898282}
	f.users["tok"] = actions
	f.appTokens["tok"] = true
	quoted := "Thanks for the pull request! You wrote:\n\n> " + marker + "\n> ### tandem plan\n> **No changes.**"
	f.seedAs("acme/shop#7", actions, quoted)
	f.seedAs("acme/shop#7", actions, marker+"\nold plan")
	res, err := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "acme/shop", HTTPClient: srv.Client()}.Upsert(context.Background(), 7, marker+"\nnew plan", marker)
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != 1002 || len(res.Removed) != 0 {
		t.Errorf("Upsert = %+v, want comment 1002 updated and nothing removed", res)
	}
	f.mu.Lock()
	got := bodiesOf(f.comments["acme/shop#7"])
	f.mu.Unlock()
	want := map[int64]string{1001: "github-actions[bot]: " + quoted, 1002: "github-actions[bot]: " + marker + "\nnew plan"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("comments (-want +got):\n%s", diff)
	}
}

// TestBodyHoldingTheMarkerLaterGetsItFirst: a body (--marker text, say) that
// holds the marker somewhere other than its first line gets it as its first
// line, so the next run finds the comment again instead of adding another.
func TestBodyHoldingTheMarkerLaterGetsItFirst(t *testing.T) {
	f, srv := newFakeGitHub(t, "", "tok")
	g := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "acme/shop", HTTPClient: srv.Client()}
	for _, body := range []string{"report\n" + marker + "\none", "report\n" + marker + "\ntwo"} {
		if _, err := g.Upsert(context.Background(), 7, body, marker); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.withMarkerBodies("acme/shop#7"); len(got) != 1 || !strings.HasPrefix(got[0], marker+"\n") || !strings.HasSuffix(got[0], "two") {
		t.Errorf("comments holding the marker = %q, want one, starting with the marker, of the second run", got)
	}
}

// TestDroppedConnectionIsRetried: an API or proxy that resets the connection
// (GitHub or GitLab having a bad minute at 3 a.m.) is a passing failure like
// a 502. Reads, edits and deletes are sent again after a backoff; a create
// whose connection dropped may have landed, so the comments are listed again
// and ours edited if it did, never created twice.
func TestDroppedConnectionIsRetried(t *testing.T) {
	list := "/repos/acme/shop/issues/7/comments"
	tests := []struct {
		name      string
		seed      bool
		faults    []fault
		wantWaits []time.Duration
		wantPosts int
	}{
		{name: "list", seed: true, faults: []fault{{method: "GET", path: list, drop: true}}, wantWaits: []time.Duration{time.Second}},
		{name: "identity", seed: true, faults: []fault{{method: "GET", path: "/user", drop: true}, {method: "GET", path: "/user", drop: true}}, wantWaits: []time.Duration{time.Second, 2 * time.Second}},
		{name: "edit", seed: true, faults: []fault{{method: "PATCH", path: "/repos/acme/shop/issues/comments/1001", drop: true}}, wantWaits: []time.Duration{time.Second}},
		// The create lands, then the connection drops before the answer.
		{name: "create", faults: []fault{{method: "POST", path: list, drop: true, after: true}}, wantWaits: []time.Duration{time.Second}, wantPosts: 1},
		// The create never reached the API: listed again, found nothing, created.
		{name: "create not landed", faults: []fault{{method: "POST", path: list, drop: true}}, wantWaits: []time.Duration{time.Second}, wantPosts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newFakeGitHub(t, "", "tok")
			if tt.seed {
				f.seedAs("acme/shop#7", bot, marker+"\nold")
			}
			f.inject(tt.faults...)
			w := &waits{}
			res, err := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "acme/shop", HTTPClient: noReuse(), Retry: RetryOptions{sleep: w.sleep}}.Upsert(context.Background(), 7, marker+"\nnew", marker)
			if err != nil {
				t.Fatalf("Upsert after a dropped connection: %v", err)
			}
			if res.ID != 1001 {
				t.Errorf("Upsert = %+v, want comment 1001", res)
			}
			if diff := cmp.Diff([]string{marker + "\nnew"}, f.withMarkerBodies("acme/shop#7")); diff != "" {
				t.Errorf("comments holding the marker (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWaits, w.all()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			if n := countRequests(f.requestLog(), "POST", list); n != tt.wantPosts {
				t.Errorf("sent the create %d times, want %d", n, tt.wantPosts)
			}
		})
	}
}

// TestDroppedConnectionsAreBounded: a connection that keeps dropping fails the
// run after Attempts tries, saying so.
func TestDroppedConnectionsAreBounded(t *testing.T) {
	f, srv := newFakeGitHub(t, "", "tok")
	list := "/repos/acme/shop/issues/7/comments"
	for range 5 {
		f.inject(fault{method: "GET", path: list, drop: true})
	}
	w := &waits{}
	_, err := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "acme/shop", HTTPClient: noReuse(), Retry: RetryOptions{sleep: w.sleep}}.Upsert(context.Background(), 7, marker+"\nnew", marker)
	if err == nil || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Errorf("Upsert = %v, want an error after 4 attempts", err)
	}
	if n := countRequests(f.requestLog(), "GET", list); n != 4 {
		t.Errorf("listed %d times, want 4", n)
	}
	if diff := cmp.Diff([]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, w.all()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
}

// noReuse is a client that opens a connection per request. Go's transport
// sends a GET again by itself when a reused idle connection turns out
// closed; with no reuse, what the tests see is tandem's own retrying.
func noReuse() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

// TestTooLongCommentSaysSo: GitHub refuses a comment over 65,536 characters
// with "422 Validation Failed", whose reason is in a list the error did not
// show. A body over the forge's limit is refused before any request, saying
// the limit; nothing is touched.
func TestTooLongCommentSaysSo(t *testing.T) {
	t.Run("github", func(t *testing.T) {
		f, srv := newFakeGitHub(t, "", "tok")
		f.seedAs("acme/shop#7", bot, marker+"\nold plan")
		body := marker + "\n" + strings.Repeat("é", 65536)
		_, err := GitHub{BaseURL: srv.URL, Token: "tok", Repo: "acme/shop", HTTPClient: srv.Client()}.Upsert(context.Background(), 7, body, marker)
		if err == nil || !strings.Contains(err.Error(), "65536") || !strings.Contains(err.Error(), "characters") {
			t.Errorf("Upsert = %v, want an error naming GitHub's limit of 65536 characters", err)
		}
		if n := countRequests(f.requestLog(), "PATCH", "/") + countRequests(f.requestLog(), "POST", "/repos"); n != 0 {
			t.Errorf("%d writes sent for a body GitHub refuses", n)
		}
	})
	t.Run("gitlab", func(t *testing.T) {
		f, srv := newFakeGitLab(t, "", "glpat-x")
		_, err := GitLab{BaseURL: srv.URL, Token: "glpat-x", Project: "42", HTTPClient: srv.Client()}.Upsert(context.Background(), 3, strings.Repeat("x", 1_000_001), marker)
		if err == nil || !strings.Contains(err.Error(), "1000000") {
			t.Errorf("Upsert = %v, want an error naming GitLab's limit", err)
		}
		if n := len(f.requestLog()); n != 0 {
			t.Errorf("%d requests sent for a note GitLab refuses", n)
		}
	})
}
