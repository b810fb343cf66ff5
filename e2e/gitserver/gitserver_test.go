package gitserver_test

import (
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/e2e/gitserver"
)

// gitCLI runs the git command line as a client would, isolated from the machine's configuration.
func gitCLI(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func withCredentials(t *testing.T, raw, user, password string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

func TestServer(t *testing.T) {
	s := gitserver.Start(t, "alice", "pa55word")
	s.CreateRepo(t, "manifests")

	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "tandem.yaml"), []byte("clusters: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("tandem.yaml", filepath.Join(src, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	first := s.PushDir(t, "manifests", "main", src, "first")
	if len(first) != 40 {
		t.Fatalf("PushDir returned %q, want a full SHA", first)
	}
	if err := os.WriteFile(filepath.Join(src, "tandem.yaml"), []byte("clusters: [x]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := s.PushDir(t, "manifests", "main", src, "second")
	s.Tag(t, "manifests", "v1", first)
	s.AnnotatedTag(t, "manifests", "v2", second, "release v2")

	if u := s.URL("manifests"); strings.Contains(u, "alice") || strings.Contains(u, "pa55word") || !strings.HasPrefix(u, "http://127.0.0.1:") {
		t.Fatalf("URL = %q, want a loopback URL without credentials", u)
	}

	t.Run("clone with credentials", func(t *testing.T) {
		before := s.Requests()
		dst := filepath.Join(t.TempDir(), "clone")
		if out, err := gitCLI(t, "", "clone", "--quiet", withCredentials(t, s.URL("manifests"), "alice", "pa55word"), dst); err != nil {
			t.Fatalf("clone: %v: %s", err, out)
		}
		data, err := os.ReadFile(filepath.Join(dst, "tandem.yaml"))
		if err != nil || string(data) != "clusters: [x]\n" {
			t.Fatalf("clone holds %q, %v", data, err)
		}
		if target, err := os.Readlink(filepath.Join(dst, "link.yaml")); err != nil || target != "tandem.yaml" {
			t.Errorf("symlink not kept: %q, %v", target, err)
		}
		log, _ := gitCLI(t, dst, "log", "--format=%H %s")
		if want := second + " second\n" + first + " first"; log != want {
			t.Errorf("history = %q, want %q", log, want)
		}
		tags, _ := gitCLI(t, dst, "tag", "--list")
		if tags != "v1\nv2" {
			t.Errorf("tags = %q", tags)
		}
		kind, _ := gitCLI(t, dst, "cat-file", "-t", "v2")
		if kind != "tag" {
			t.Errorf("v2 is a %q object, want an annotated tag", kind)
		}
		if s.Requests() <= before || s.BytesServed() == 0 {
			t.Errorf("counters did not move: %d requests, %d bytes", s.Requests(), s.BytesServed())
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "clone")
		if out, err := gitCLI(t, "", "clone", "--quiet", withCredentials(t, s.URL("manifests"), "alice", "wrong"), dst); err == nil {
			t.Fatalf("clone with a wrong password succeeded: %s", out)
		}
	})

	t.Run("no credentials", func(t *testing.T) {
		resp, err := http.Get(s.URL("manifests") + "/info/refs?service=git-upload-pack")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", resp.StatusCode)
		}
	})

	t.Run("push over HTTP", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "clone")
		authURL := withCredentials(t, s.URL("manifests"), "alice", "pa55word")
		if out, err := gitCLI(t, "", "clone", "--quiet", authURL, dst); err != nil {
			t.Fatalf("clone: %v: %s", err, out)
		}
		for _, args := range [][]string{
			{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "--allow-empty", "-m", "pushed"},
			{"push", "--quiet", "origin", "HEAD:refs/heads/feature"},
		} {
			if out, err := gitCLI(t, dst, args...); err != nil {
				t.Fatalf("git %v: %v: %s", args, err, out)
			}
		}
		out, err := gitCLI(t, "", "ls-remote", authURL, "refs/heads/feature")
		if err != nil || !strings.HasSuffix(out, "refs/heads/feature") {
			t.Fatalf("ls-remote: %q, %v", out, err)
		}
	})
}

func TestServerWithoutAuth(t *testing.T) {
	s := gitserver.Start(t, "", "")
	s.CreateRepo(t, "open")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	sha := s.PushDir(t, "open", "main", src, "only")
	out, err := gitCLI(t, "", "ls-remote", s.URL("open"), "refs/heads/main")
	if err != nil || !strings.HasPrefix(out, sha) {
		t.Fatalf("ls-remote = %q, %v; want %s", out, err, sha)
	}
}
