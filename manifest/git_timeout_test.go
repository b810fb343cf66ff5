package manifest_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/manifest"
)

// silentServer accepts connections and never answers, like a git server
// behind a stuck proxy. It returns its address.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
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
