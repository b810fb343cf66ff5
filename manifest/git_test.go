package manifest_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tandem-gitops/tandem/internal/syncbuf"

	"github.com/tandem-gitops/tandem/e2e/gitserver"
	"github.com/tandem-gitops/tandem/manifest"
)

const (
	gitUser     = "tandem"
	gitPassword = "t0k3n-Sup3r-S3cret"
	tokenEnv    = "TANDEM_TEST_GIT_TOKEN"
)

// repoFiles writes files (name -> content; content "->target" makes a symlink) into a new directory.
func repoFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// readTree reads every file under dir (symlinks as "->target") for comparison with repoFiles' input.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if e.Type()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			got[filepath.ToSlash(rel)] = "->" + target
			return err
		}
		data, err := os.ReadFile(p)
		got[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// history is a repository on a fresh server: main has two commits, feature one more, v1 is a
// lightweight tag on the first commit and v2 an annotated tag on the second.
type history struct {
	srv                     *gitserver.Server
	url                     string
	first, second, third    string
	firstFiles, secondFiles map[string]string
}

func newHistory(t *testing.T) history {
	t.Helper()
	t.Setenv(tokenEnv, gitPassword)
	t.Setenv(manifest.GitUserEnv, gitUser)
	s := gitserver.Start(t, gitUser, gitPassword)
	s.CreateRepo(t, "shop")
	h := history{srv: s, url: s.URL("shop")}
	h.firstFiles = map[string]string{"tandem.yaml": "clusters: []\n", "values/a.yaml": "a: 1\n", "link.yaml": "->values/a.yaml"}
	h.first = s.PushDir(t, "shop", "main", repoFiles(t, h.firstFiles), "first")
	h.secondFiles = map[string]string{"tandem.yaml": "clusters: [blue]\n", "values/a.yaml": "a: 2\n"}
	h.second = s.PushDir(t, "shop", "main", repoFiles(t, h.secondFiles), "second")
	h.third = s.PushDir(t, "shop", "feature", repoFiles(t, map[string]string{"feature.txt": "new\n"}), "third")
	s.Tag(t, "shop", "v1", h.first)
	s.AnnotatedTag(t, "shop", "v2", h.second, "release 2")
	return h
}

func (h history) opts(t *testing.T, ref string) manifest.GitOptions {
	return manifest.GitOptions{URL: h.url, Ref: ref, CacheDir: t.TempDir(), TokenEnv: tokenEnv}
}

func TestFetchRefs(t *testing.T) {
	h := newHistory(t)
	tests := []struct {
		ref       string
		wantSHA   string
		wantRef   string
		wantFiles map[string]string
	}{
		{ref: "main", wantSHA: h.second, wantRef: "refs/heads/main", wantFiles: h.secondFiles},
		{ref: "", wantSHA: h.second, wantRef: "refs/heads/main", wantFiles: h.secondFiles},
		{ref: "HEAD", wantSHA: h.second, wantRef: "refs/heads/main", wantFiles: h.secondFiles},
		{ref: "refs/heads/feature", wantSHA: h.third, wantRef: "refs/heads/feature", wantFiles: map[string]string{"feature.txt": "new\n"}},
		{ref: "v1", wantSHA: h.first, wantRef: "refs/tags/v1", wantFiles: h.firstFiles},
		{ref: "v2", wantSHA: h.second, wantRef: "refs/tags/v2", wantFiles: h.secondFiles},
		{ref: h.first, wantSHA: h.first, wantRef: h.first, wantFiles: h.firstFiles},
		{ref: h.first[:7], wantSHA: h.first, wantRef: h.first[:7], wantFiles: h.firstFiles},
		{ref: strings.ToUpper(h.third), wantSHA: h.third, wantRef: strings.ToUpper(h.third), wantFiles: map[string]string{"feature.txt": "new\n"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("ref %q", tt.ref), func(t *testing.T) {
			co, err := manifest.Fetch(context.Background(), h.opts(t, tt.ref))
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if co.Commit != tt.wantSHA || co.Ref != tt.wantRef {
				t.Errorf("Fetch = commit %s ref %q, want %s %q", co.Commit, co.Ref, tt.wantSHA, tt.wantRef)
			}
			if diff := cmp.Diff(tt.wantFiles, readTree(t, co.Dir)); diff != "" {
				t.Errorf("checked-out files mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFetchSHADirect checks that a server allowing reachable SHAs in wants is asked for the
// commit alone instead of for every branch with its history.
func TestFetchSHADirect(t *testing.T) {
	h := newHistory(t)
	fallback := measure(t, h.srv, h.opts(t, h.first))
	h.srv.SetConfig(t, "shop", "uploadpack.allowReachableSHA1InWant", "true")
	direct := measure(t, h.srv, h.opts(t, h.first))
	if direct.bytes >= fallback.bytes {
		t.Errorf("direct SHA fetch served %d bytes, the fallback %d: want fewer", direct.bytes, fallback.bytes)
	}
}

type cost struct {
	requests int
	bytes    int64
	co       manifest.Checkout
}

func measure(t *testing.T, s *gitserver.Server, opts manifest.GitOptions) cost {
	t.Helper()
	r, b := s.Requests(), s.BytesServed()
	co, err := manifest.Fetch(context.Background(), opts)
	if err != nil {
		t.Fatalf("Fetch(%q): %v", opts.Ref, err)
	}
	return cost{requests: s.Requests() - r, bytes: s.BytesServed() - b, co: co}
}

// noise returns n bytes that do not compress, so that pack sizes reflect what was sent.
func noise(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, seed))
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

func TestFetchIncremental(t *testing.T) {
	t.Setenv(tokenEnv, gitPassword)
	s := gitserver.Start(t, "git", gitPassword)
	s.CreateRepo(t, "big")
	files := map[string]string{}
	for i := range 20 {
		files[fmt.Sprintf("charts/c%d/templates/t.yaml", i)] = noise(uint64(i), 20000)
	}
	files["tandem.yaml"] = "version: 1\n"
	first := s.PushDir(t, "big", "main", repoFiles(t, files), "first")
	opts := manifest.GitOptions{URL: s.URL("big"), Ref: "main", CacheDir: t.TempDir(), TokenEnv: tokenEnv}

	clone := measure(t, s, opts)
	if clone.co.Commit != first {
		t.Fatalf("clone got %s, want %s", clone.co.Commit, first)
	}

	unchanged := measure(t, s, opts)
	if unchanged.co != clone.co {
		t.Errorf("unchanged ref: got %+v, want %+v", unchanged.co, clone.co)
	}
	if unchanged.requests != 1 {
		t.Errorf("unchanged ref took %d requests, want 1 (listing the refs)", unchanged.requests)
	}

	files["tandem.yaml"] = "version: 2\n"
	second := s.PushDir(t, "big", "main", repoFiles(t, files), "second")
	update := measure(t, s, opts)
	if update.co.Commit != second {
		t.Fatalf("update got %s, want %s", update.co.Commit, second)
	}
	if got := readTree(t, update.co.Dir)["tandem.yaml"]; got != "version: 2\n" {
		t.Errorf("update checked out tandem.yaml %q", got)
	}
	fresh := measure(t, s, manifest.GitOptions{URL: opts.URL, Ref: "main", CacheDir: t.TempDir(), TokenEnv: tokenEnv})
	t.Logf("clone %d requests %d bytes; unchanged %d/%d; update %d/%d; fresh clone of the update %d/%d",
		clone.requests, clone.bytes, unchanged.requests, unchanged.bytes, update.requests, update.bytes, fresh.requests, fresh.bytes)
	if update.bytes*10 > fresh.bytes {
		t.Errorf("incremental fetch served %d bytes, a fresh clone %d: want under a tenth", update.bytes, fresh.bytes)
	}
	// The earlier checkout is still there, unchanged, for whoever still reads it.
	if got := readTree(t, clone.co.Dir)["tandem.yaml"]; got != "version: 1\n" {
		t.Errorf("the first checkout changed: tandem.yaml is %q", got)
	}
}

func TestFetchAuthErrors(t *testing.T) {
	s := gitserver.Start(t, gitUser, gitPassword)
	s.CreateRepo(t, "shop")
	s.PushDir(t, "shop", "main", repoFiles(t, map[string]string{"a": "a"}), "one")

	const wrong = "Wr0ng-T0ken-Value"
	tests := []struct {
		name  string
		token string
	}{
		{"wrong token", wrong},
		{"no token", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tokenEnv, tt.token)
			t.Setenv(manifest.GitUserEnv, gitUser)
			_, err := manifest.Fetch(context.Background(), manifest.GitOptions{URL: s.URL("shop"), Ref: "main", CacheDir: t.TempDir(), TokenEnv: tokenEnv})
			if err == nil {
				t.Fatal("Fetch succeeded without the right credentials")
			}
			if !errors.Is(err, manifest.ErrGitAuth) {
				t.Errorf("error %q is not ErrGitAuth", err)
			}
			msg := err.Error()
			for _, secret := range []string{wrong, gitPassword, base64.StdEncoding.EncodeToString([]byte(gitUser + ":" + wrong))} {
				if strings.Contains(msg, secret) {
					t.Errorf("error reveals a secret: %q", msg)
				}
			}
			if !strings.Contains(msg, s.URL("shop")) {
				t.Errorf("error %q does not name the repository", msg)
			}
		})
	}
}

func TestFetchErrors(t *testing.T) {
	h := newHistory(t)
	tests := []struct {
		name    string
		opts    func(o manifest.GitOptions) manifest.GitOptions
		wantIs  error
		wantMsg string // a part of the message
		secret  string // must not appear
	}{
		{
			name:    "unknown branch",
			opts:    func(o manifest.GitOptions) manifest.GitOptions { o.Ref = "nope"; return o },
			wantIs:  manifest.ErrUnknownRef,
			wantMsg: `ref "nope": unknown ref: no branch or tag of that name on the remote`,
		},
		{
			name:    "unknown commit",
			opts:    func(o manifest.GitOptions) manifest.GitOptions { o.Ref = strings.Repeat("0123456789", 4); return o },
			wantIs:  manifest.ErrUnknownRef,
			wantMsg: "unknown ref: no commit 0123456789012345678901234567890123456789 is reachable from the remote's branches or tags",
		},
		{
			name:    "unknown repository",
			opts:    func(o manifest.GitOptions) manifest.GitOptions { o.URL = h.srv.URL("nope"); return o },
			wantIs:  manifest.ErrGitRepoNotFound,
			wantMsg: h.srv.URL("nope"),
		},
		{
			name: "password in the URL",
			opts: func(o manifest.GitOptions) manifest.GitOptions {
				o.URL = strings.Replace(o.URL, "http://", "http://me:hunter2@", 1)
				return o
			},
			wantMsg: "URL must not hold a password: put the token in $" + tokenEnv,
			secret:  "hunter2",
		},
		{
			name:    "token over plain http to another host",
			opts:    func(o manifest.GitOptions) manifest.GitOptions { o.URL = "http://git.example.com/shop.git"; return o },
			wantMsg: "refusing to send the token in $" + tokenEnv + " over plain http to git.example.com; use https",
		},
		{
			name:    "ssh key for an https URL",
			opts:    func(o manifest.GitOptions) manifest.GitOptions { o.SSHKeyFile = "/nonexistent"; return o },
			wantMsg: "SSHKeyFile is set, but the URL is not an ssh URL",
		},
		{
			name: "unreadable ssh key",
			opts: func(o manifest.GitOptions) manifest.GitOptions {
				o.URL = "git@git.example.com:shop.git"
				o.SSHKeyFile = "/nonexistent/key"
				return o
			},
			wantMsg: `ssh key "/nonexistent/key"`,
		},
		{
			name:    "no URL",
			opts:    func(o manifest.GitOptions) manifest.GitOptions { o.URL = ""; return o },
			wantMsg: "URL must be set",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := manifest.Fetch(context.Background(), tt.opts(h.opts(t, "main")))
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			for _, s := range []string{gitPassword, tt.secret} {
				if s != "" && strings.Contains(err.Error(), s) {
					t.Errorf("error reveals a secret: %q", err)
				}
			}
		})
	}
}

func TestFetchCanceled(t *testing.T) {
	h := newHistory(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := manifest.Fetch(ctx, h.opts(t, "main"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

func TestFetchConcurrent(t *testing.T) {
	h := newHistory(t)
	cache := t.TempDir()
	refs := []string{"main", "main", "v1", "feature", "main", h.first}
	want := map[string]string{"main": h.second, "v1": h.first, "feature": h.third, h.first: h.first}
	got := make([]manifest.Checkout, len(refs))
	errs := make([]error, len(refs))
	var wg sync.WaitGroup
	for i, ref := range refs {
		wg.Go(func() {
			got[i], errs[i] = manifest.Fetch(context.Background(), manifest.GitOptions{
				URL: h.url, Ref: ref, CacheDir: cache, TokenEnv: tokenEnv, KeepCheckouts: 10,
			})
		})
	}
	wg.Wait()
	for i, ref := range refs {
		if errs[i] != nil {
			t.Errorf("Fetch(%q): %v", ref, errs[i])
			continue
		}
		if got[i].Commit != want[ref] {
			t.Errorf("Fetch(%q) = %s, want %s", ref, got[i].Commit, want[ref])
		}
	}
	if t.Failed() {
		return
	}
	// Every checkout is complete: the files of its own commit, not a mix.
	if diff := cmp.Diff(h.secondFiles, readTree(t, got[0].Dir)); diff != "" {
		t.Errorf("main checkout (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(h.firstFiles, readTree(t, got[2].Dir)); diff != "" {
		t.Errorf("v1 checkout (-want +got):\n%s", diff)
	}
	// And the cache still works afterwards.
	if co, err := manifest.Fetch(context.Background(), manifest.GitOptions{URL: h.url, Ref: "main", CacheDir: cache, TokenEnv: tokenEnv}); err != nil || co.Commit != h.second {
		t.Errorf("Fetch after the concurrent ones = %+v, %v", co, err)
	}
}

func TestFetchPrunesOldCheckouts(t *testing.T) {
	h := newHistory(t)
	opts := h.opts(t, "")
	opts.KeepCheckouts = 2
	var dirs []string
	for _, ref := range []string{"v1", "v2", "feature"} {
		opts.Ref = ref
		co, err := manifest.Fetch(context.Background(), opts)
		if err != nil {
			t.Fatalf("Fetch(%q): %v", ref, err)
		}
		dirs = append(dirs, co.Dir)
	}
	if _, err := os.Stat(dirs[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("oldest checkout %s survived pruning: %v", dirs[0], err)
	}
	for _, d := range dirs[1:] {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("recent checkout pruned: %v", err)
		}
	}
}

// TestFetchThenLoad goes from a git server to a loaded manifest, as the reconciler does.
func TestFetchThenLoad(t *testing.T) {
	t.Setenv(tokenEnv, gitPassword)
	s := gitserver.Start(t, "git", gitPassword)
	s.CreateRepo(t, "examples")
	s.PushDir(t, "examples", "main", filepath.Join("..", "examples", "manifest"), "example")
	co, err := manifest.Fetch(context.Background(), manifest.GitOptions{URL: s.URL("examples"), Ref: "main", CacheDir: t.TempDir(), TokenEnv: tokenEnv})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	m, err := manifest.Load(co.Dir, manifest.DefaultLoadOptions())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if m.Dir != co.Dir || len(m.Releases) == 0 {
		t.Errorf("loaded %d releases from %s", len(m.Releases), m.Dir)
	}
}

// TestFetchRecovers covers what an incremental fetch may not get from a server that believes
// the cache holds the whole history: Fetch notices the missing objects and clones again.
func TestFetchRecovers(t *testing.T) {
	tests := []struct {
		name string
		// change moves main after the cache has fetched it and returns the commit and files expected.
		change func(t *testing.T, h history) (string, map[string]string)
		// mustReclone says that git's upload-pack sends too little for this change, so that
		// Fetch has to clone again; where it sends enough anyway, only the result is checked.
		mustReclone bool
	}{
		{
			name:        "branch force-pushed back to an uncached commit",
			mustReclone: true,
			change: func(t *testing.T, h history) (string, map[string]string) {
				h.srv.SetBranch(t, "shop", "main", h.first)
				return h.first, h.firstFiles
			},
		},
		{
			name: "file reverted to content only an uncached commit had",
			change: func(t *testing.T, h history) (string, map[string]string) {
				files := map[string]string{"tandem.yaml": "clusters: [green]\n", "values/a.yaml": "a: 1\n"}
				return h.srv.PushDir(t, "shop", "main", repoFiles(t, files), "revert a"), files
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(t)
			var logs syncbuf.Buffer // slog handlers may be called concurrently
			opts := h.opts(t, "main")
			opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			if co, err := manifest.Fetch(context.Background(), opts); err != nil || co.Commit != h.second {
				t.Fatalf("first Fetch = %+v, %v", co, err)
			}
			wantSHA, wantFiles := tt.change(t, h)
			co, err := manifest.Fetch(context.Background(), opts)
			if err != nil {
				t.Fatalf("Fetch after the change: %v\nlog:\n%s", err, logs.String())
			}
			if co.Commit != wantSHA {
				t.Errorf("Fetch = %s, want %s", co.Commit, wantSHA)
			}
			if diff := cmp.Diff(wantFiles, readTree(t, co.Dir)); diff != "" {
				t.Errorf("checked-out files mismatch (-want +got):\n%s", diff)
			}
			if tt.mustReclone && !strings.Contains(logs.String(), "cloning again") {
				t.Errorf("Fetch did not have to clone again, so this test tests nothing; log:\n%s", logs.String())
			}
			if strings.Contains(logs.String(), gitPassword) {
				t.Errorf("log reveals the token:\n%s", logs.String())
			}
		})
	}
}
