package manifest_test

import (
	"context"
	"errors"
	"github.com/tandem-gitops/tandem/internal/silentserver"
	"strings"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/manifest"
)

// silentServer accepts connections and never answers, like a git server
// behind a stuck proxy. It returns its address.
func silentServer(t *testing.T) string {
	return silentserver.Start(t)
}

// TestFetchTimesOut covers issue 8 item 11 (git fetch): a git server that
// accepts the connection and never answers fails the fetch within
// GitOptions.Timeout, with an error saying it timed out. The test's own
// deadline only catches a hang; it says nothing about speed.
func TestFetchTimesOut(t *testing.T) {
	t.Setenv(tokenEnv, gitPassword)
	url := "http://" + silentServer(t) + "/shop/manifest.git"
	done := make(chan error, 1)
	go func() {
		_, err := manifest.Fetch(context.Background(), manifest.GitOptions{
			URL: url, Ref: "main", CacheDir: t.TempDir(), TokenEnv: tokenEnv, Timeout: 300 * time.Millisecond,
		})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Fetch(silent server) = %v, want an error saying it timed out after 300ms", err)
		}
		if strings.Contains(err.Error(), gitPassword) {
			t.Fatalf("error reveals the token: %v", err)
		}
		t.Log(err)
	case <-time.After(30 * time.Second):
		t.Fatal("Fetch from a server that never answers did not return")
	}
}

func TestDefaultGitTimeout(t *testing.T) {
	if got := manifest.DefaultGitOptions().Timeout; got != manifest.DefaultGitTimeout || got <= 0 {
		t.Errorf("DefaultGitOptions().Timeout = %s, want DefaultGitTimeout (%s)", got, manifest.DefaultGitTimeout)
	}
}
