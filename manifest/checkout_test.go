package manifest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

func TestCheckTreePath(t *testing.T) {
	for _, ok := range []string{"a", "a/b.yaml", ".github/x", "a/.gitignore", "..a", "a..b/c"} {
		if err := checkTreePath(ok); err != nil {
			t.Errorf("checkTreePath(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", ".git/config", "a/.GIT/hooks/x", "a/\x00"} {
		if err := checkTreePath(bad); err == nil {
			t.Errorf("checkTreePath(%q) = nil, want an error", bad)
		}
	}
}

// TestMkdirsRefusesSymlinks shows that a tree holding a symlink "a" and a file "a/b" cannot
// make writeCommit write through the symlink.
func TestMkdirsRefusesSymlinks(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "a")); err != nil {
		t.Fatal(err)
	}
	made := map[string]bool{".": true}
	if err := mkdirs(root, "a/b", made); err == nil {
		t.Fatal("mkdirs went through a symlink")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("mkdirs wrote outside: %v", entries)
	}
	if err := mkdirs(root, "c/d/e", made); err != nil {
		t.Fatalf("mkdirs: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(root, "c", "d", "e")); err != nil || !fi.IsDir() {
		t.Errorf("c/d/e not made: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	tests := map[string]string{
		"https://example.com/org/repo.git":         "https://example.com/org/repo.git",
		"https://user:s3cret@example.com/repo.git": "https://user:xxxxx@example.com/repo.git",
		"git@example.com:org/repo.git":             "git@example.com:org/repo.git",
		"ssh://git@example.com/org/repo.git":       "ssh://git@example.com/org/repo.git",
		"user:s3cret@exa mple.com/repo":            "***@exa mple.com/repo",
	}
	for in, want := range tests {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScrub(t *testing.T) {
	const token = "tok-123456"
	raw := fmt.Errorf("fetch: %w: Get \"https://u:%s@example.com/x\": body echoed %s and Basic dTp0b2stMTIzNDU2",
		transport.ErrAuthenticationRequired, token, token)
	err := scrub(fmt.Errorf("wrapped: %w", raw), []string{token, "dTp0b2stMTIzNDU2"})
	if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "dTp0b2st") || strings.Contains(err.Error(), "u:") {
		t.Errorf("scrubbed message still holds a secret: %q", err)
	}
	if !errors.Is(err, ErrGitAuth) {
		t.Errorf("scrubbed error lost its kind: %v", err)
	}
	if errors.Is(err, transport.ErrAuthenticationRequired) || errors.Unwrap(err) != nil {
		t.Error("scrubbed error unwraps to the original, whose message holds the secret")
	}
	for _, u := range unwrapAll(err) {
		if strings.Contains(u.Error(), token) {
			t.Errorf("an unwrapped error holds the secret: %q", u)
		}
	}
	if !errors.Is(scrub(fmt.Errorf("x: %w", context.Canceled), nil), context.Canceled) {
		t.Error("scrub lost context.Canceled")
	}
}

func unwrapAll(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		out = append(out, e)
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			if n := u.Unwrap(); n != nil {
				walk(n)
			}
		case interface{ Unwrap() []error }:
			for _, n := range u.Unwrap() {
				walk(n)
			}
		}
	}
	walk(err)
	return out
}
