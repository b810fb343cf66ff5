package manifest_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/e2e/gitserver"
	"github.com/tandem-gitops/tandem/manifest"
)

// remoteHead calls RemoteHead and returns its answer with the requests it cost.
func remoteHead(t *testing.T, s *gitserver.Server, opts manifest.GitOptions) (string, int) {
	t.Helper()
	before := s.Requests()
	sha, err := manifest.RemoteHead(context.Background(), opts)
	if err != nil {
		t.Fatalf("RemoteHead(%q): %v", opts.Ref, err)
	}
	return sha, s.Requests() - before
}

func TestRemoteHead(t *testing.T) {
	h := newHistory(t)
	tests := []struct {
		ref          string
		want         string
		wantRequests int
	}{
		{ref: "main", want: h.second, wantRequests: 1},
		{ref: "", want: h.second, wantRequests: 1},
		{ref: "HEAD", want: h.second, wantRequests: 1},
		{ref: "refs/heads/main", want: h.second, wantRequests: 1},
		{ref: "feature", want: h.third, wantRequests: 1},
		{ref: "v1", want: h.first, wantRequests: 1},
		{ref: "refs/tags/v1", want: h.first, wantRequests: 1},
		// v2 is an annotated tag: the answer is the commit it tags, not the tag object.
		{ref: "v2", want: h.second, wantRequests: 1},
		{ref: "refs/tags/v2", want: h.second, wantRequests: 1},
		// A full SHA names itself: no request.
		{ref: h.first, want: h.first, wantRequests: 0},
		{ref: strings.ToUpper(h.third), want: h.third, wantRequests: 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("ref %q", tt.ref), func(t *testing.T) {
			opts := h.opts(t, tt.ref)
			got, requests := remoteHead(t, h.srv, opts)
			if got != tt.want {
				t.Errorf("RemoteHead = %s, want %s", got, tt.want)
			}
			if requests != tt.wantRequests {
				t.Errorf("RemoteHead took %d requests, want %d", requests, tt.wantRequests)
			}
			// It agrees with Fetch, and leaves the cache alone.
			co, err := manifest.Fetch(context.Background(), opts)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if co.Commit != got {
				t.Errorf("Fetch = %s, RemoteHead = %s", co.Commit, got)
			}
		})
	}
}

// TestRemoteHeadMoves is the daemon's poll: one request per poll, and the answer follows pushes.
func TestRemoteHeadMoves(t *testing.T) {
	h := newHistory(t)
	opts := h.opts(t, "main")
	for i := range 3 {
		got, requests := remoteHead(t, h.srv, opts)
		if got != h.second || requests != 1 {
			t.Errorf("poll %d: RemoteHead = %s after %d requests, want %s after 1", i, got, requests, h.second)
		}
	}
	pushed := h.srv.PushDir(t, "shop", "main", repoFiles(t, map[string]string{"tandem.yaml": "clusters: [green]\n"}), "fourth")
	got, requests := remoteHead(t, h.srv, opts)
	if got != pushed || requests != 1 {
		t.Errorf("after a push: RemoteHead = %s after %d requests, want %s after 1", got, requests, pushed)
	}
	h.srv.SetBranch(t, "shop", "main", h.first) // a force-push back
	if got, _ := remoteHead(t, h.srv, opts); got != h.first {
		t.Errorf("after a force-push: RemoteHead = %s, want %s", got, h.first)
	}
}

func TestRemoteHeadErrors(t *testing.T) {
	h := newHistory(t)
	const wrong = "Wr0ng-T0ken-Value"
	tests := []struct {
		name    string
		opts    func(t *testing.T, o manifest.GitOptions) manifest.GitOptions
		wantIs  error
		wantMsg []string // parts of the message
	}{
		{
			name:    "missing branch",
			opts:    func(t *testing.T, o manifest.GitOptions) manifest.GitOptions { o.Ref = "nope"; return o },
			wantIs:  manifest.ErrUnknownRef,
			wantMsg: []string{h.url, `ref "nope"`, "unknown ref: no branch or tag of that name on the remote"},
		},
		{
			name:    "missing full ref name",
			opts:    func(t *testing.T, o manifest.GitOptions) manifest.GitOptions { o.Ref = "refs/heads/v1"; return o },
			wantIs:  manifest.ErrUnknownRef,
			wantMsg: []string{`ref "refs/heads/v1"`, "unknown ref"},
		},
		{
			name:    "peeled spelling is not a ref",
			opts:    func(t *testing.T, o manifest.GitOptions) manifest.GitOptions { o.Ref = "v2^{}"; return o },
			wantIs:  manifest.ErrUnknownRef,
			wantMsg: []string{`ref "v2^{}"`, "unknown ref"},
		},
		{
			name:    "abbreviated SHA",
			opts:    func(t *testing.T, o manifest.GitOptions) manifest.GitOptions { o.Ref = h.first[:7]; return o },
			wantIs:  manifest.ErrUnknownRef,
			wantMsg: []string{fmt.Sprintf("ref %q", h.first[:7]), "give all 40 hex digits"},
		},
		{
			name:    "missing repository",
			opts:    func(t *testing.T, o manifest.GitOptions) manifest.GitOptions { o.URL = h.srv.URL("nope"); return o },
			wantIs:  manifest.ErrGitRepoNotFound,
			wantMsg: []string{h.srv.URL("nope")},
		},
		{
			name: "wrong token",
			opts: func(t *testing.T, o manifest.GitOptions) manifest.GitOptions {
				t.Setenv(tokenEnv, wrong)
				return o
			},
			wantIs:  manifest.ErrGitAuth,
			wantMsg: []string{h.url, `ref "main"`},
		},
		{
			name: "no token",
			opts: func(t *testing.T, o manifest.GitOptions) manifest.GitOptions {
				t.Setenv(tokenEnv, "")
				return o
			},
			wantIs:  manifest.ErrGitAuth,
			wantMsg: []string{h.url},
		},
		{
			name: "password in the URL",
			opts: func(t *testing.T, o manifest.GitOptions) manifest.GitOptions {
				o.URL = strings.Replace(o.URL, "http://", "http://me:hunter2@", 1)
				return o
			},
			wantMsg: []string{"URL must not hold a password"},
		},
		{
			name: "token over plain http to another host",
			opts: func(t *testing.T, o manifest.GitOptions) manifest.GitOptions {
				o.URL = "http://git.example.com/shop.git"
				return o
			},
			wantMsg: []string{"refusing to send the token"},
		},
		{
			name:    "no URL",
			opts:    func(t *testing.T, o manifest.GitOptions) manifest.GitOptions { o.URL = ""; return o },
			wantMsg: []string{"URL must be set"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := manifest.RemoteHead(context.Background(), tt.opts(t, h.opts(t, "main")))
			if err == nil {
				t.Fatal("RemoteHead succeeded")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
			for _, part := range tt.wantMsg {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not contain %q", err, part)
				}
			}
			secrets := []string{wrong, gitPassword, "hunter2", base64.StdEncoding.EncodeToString([]byte(gitUser + ":" + wrong))}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error reveals a secret: %q", err)
				}
			}
		})
	}
}

func TestRemoteHeadTimesOut(t *testing.T) {
	t.Setenv(tokenEnv, gitPassword)
	url := "http://" + silentServer(t) + "/shop/manifest.git"
	done := make(chan error, 1)
	go func() {
		_, err := manifest.RemoteHead(context.Background(), manifest.GitOptions{
			URL: url, Ref: "main", CacheDir: t.TempDir(), TokenEnv: tokenEnv, Timeout: 300 * time.Millisecond,
		})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("RemoteHead(silent server) = %v, want an error saying it timed out after 300ms", err)
		}
		if strings.Contains(err.Error(), gitPassword) {
			t.Fatalf("error reveals the token: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("RemoteHead from a server that never answers did not return")
	}
}

func TestRemoteHeadCanceled(t *testing.T) {
	h := newHistory(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := manifest.RemoteHead(ctx, h.opts(t, "main")); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

// TestFetchCachedCommit checks that what the cache holds is never downloaded again.
func TestFetchCachedCommit(t *testing.T) {
	h := newHistory(t)
	opts := h.opts(t, "main")
	if c := measure(t, h.srv, opts); c.co.Commit != h.second {
		t.Fatalf("Fetch(main) = %s, want %s", c.co.Commit, h.second)
	}

	t.Run("Fetch of a cached SHA", func(t *testing.T) {
		pinned := opts
		pinned.Ref = h.second
		c := measure(t, h.srv, pinned)
		if c.requests != 0 || c.co.Commit != h.second {
			t.Errorf("Fetch(cached %s) = %s after %d requests, want it after 0", h.second, c.co.Commit, c.requests)
		}
	})
	t.Run("FetchCommit of a cached SHA", func(t *testing.T) {
		c := fetchCommit(t, h.srv, opts, h.second)
		if c.requests != 0 || c.co.Commit != h.second || c.co.Ref != h.second {
			t.Errorf("FetchCommit(cached) = %+v after %d requests, want commit and ref %s after 0", c.co, c.requests, h.second)
		}
		if diff := readTree(t, c.co.Dir); diff["tandem.yaml"] != h.secondFiles["tandem.yaml"] {
			t.Errorf("FetchCommit(cached) checked out %v", diff)
		}
	})
	t.Run("FetchCommit of a new commit fetches the ref", func(t *testing.T) {
		files := map[string]string{"tandem.yaml": "clusters: [green]\n"}
		pushed := h.srv.PushDir(t, "shop", "main", repoFiles(t, files), "fourth")
		head, _ := remoteHead(t, h.srv, opts)
		c := fetchCommit(t, h.srv, opts, head)
		// The ref's full name shows it went through the branch, not through the SHA (which
		// this server, like git's default, does not allow in wants).
		if c.co.Commit != pushed || c.co.Ref != "refs/heads/main" || c.requests == 0 {
			t.Errorf("FetchCommit(new) = %+v after %d requests, want %s via refs/heads/main", c.co, c.requests, pushed)
		}
		if got := readTree(t, c.co.Dir)["tandem.yaml"]; got != files["tandem.yaml"] {
			t.Errorf("FetchCommit(new) checked out tandem.yaml %q", got)
		}
		again := fetchCommit(t, h.srv, opts, head)
		if again.requests != 0 || again.co.Commit != pushed {
			t.Errorf("FetchCommit(now cached) = %s after %d requests, want %s after 0", again.co.Commit, again.requests, pushed)
		}
	})
	t.Run("FetchCommit after the ref moved on", func(t *testing.T) {
		seen := h.srv.PushDir(t, "shop", "main", repoFiles(t, map[string]string{"a": "5"}), "fifth")
		head, _ := remoteHead(t, h.srv, opts)
		newer := h.srv.PushDir(t, "shop", "main", repoFiles(t, map[string]string{"a": "6"}), "sixth")
		c := fetchCommit(t, h.srv, opts, head)
		if head != seen || c.co.Commit != newer {
			t.Errorf("FetchCommit(%s) after the branch moved to %s = %s, want the newer commit", head, newer, c.co.Commit)
		}
	})
	t.Run("annotated tag", func(t *testing.T) {
		tag := h.opts(t, "v2")
		head, _ := remoteHead(t, h.srv, tag)
		if c := measure(t, h.srv, tag); c.co.Commit != head {
			t.Fatalf("Fetch(v2) = %s, RemoteHead(v2) = %s", c.co.Commit, head)
		}
		if c := fetchCommit(t, h.srv, tag, head); c.requests != 0 || c.co.Commit != h.second {
			t.Errorf("FetchCommit(v2's commit) = %s after %d requests, want %s after 0", c.co.Commit, c.requests, h.second)
		}
	})
}

func TestFetchCommitErrors(t *testing.T) {
	h := newHistory(t)
	for _, sha := range []string{"", "main", h.first[:7], h.first + "0"} {
		_, err := manifest.FetchCommit(context.Background(), h.opts(t, "main"), sha)
		if err == nil || !strings.Contains(err.Error(), "not a full 40-digit SHA") {
			t.Errorf("FetchCommit(%q) = %v, want an error saying it is not a full SHA", sha, err)
		}
	}
	// A SHA the remote does not have falls back to the ref, which is what gets checked out.
	c := fetchCommit(t, h.srv, h.opts(t, "main"), strings.Repeat("0123456789", 4))
	if c.co.Commit != h.second {
		t.Errorf("FetchCommit(unknown SHA) = %s, want main's %s", c.co.Commit, h.second)
	}
	// Errors name the URL without credentials.
	opts := h.opts(t, "main")
	opts.URL = strings.Replace(opts.URL, "http://", "http://me:hunter2@", 1)
	_, err := manifest.FetchCommit(context.Background(), opts, h.first)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("FetchCommit(password in the URL) = %v, want an error without the password", err)
	}
}

func fetchCommit(t *testing.T, s *gitserver.Server, opts manifest.GitOptions, sha string) cost {
	t.Helper()
	before := s.Requests()
	co, err := manifest.FetchCommit(context.Background(), opts, sha)
	if err != nil {
		t.Fatalf("FetchCommit(%s): %v", sha, err)
	}
	return cost{requests: s.Requests() - before, co: co}
}
