package comment

import (
	"context"
	"errors"
	"github.com/tandem-gitops/tandem/internal/silentserver"
	"strings"
	"testing"
	"time"
)

// silentServer accepts connections and never answers, the way an API behind
// a stuck proxy does. It returns its base URL.
func silentServer(t *testing.T) string {
	return "http://" + silentserver.Start(t)
}

// TestUpsertTimesOut covers issue 8 item 11 (HTTP to GitHub/GitLab): an API
// that accepts the connection and never answers fails the call with an
// error saying what timed out, instead of hanging it. The test's own
// deadline only catches a hang; it says nothing about speed.
func TestUpsertTimesOut(t *testing.T) {
	const secret = "s3cr3t-t0ken"
	upserts := map[string]func(ctx context.Context, base string) error{
		"github": func(ctx context.Context, base string) error {
			_, err := GitHub{BaseURL: base, Token: secret, Repo: "shop/web", Timeout: 200 * time.Millisecond}.Upsert(ctx, 7, "body", marker)
			return err
		},
		"gitlab": func(ctx context.Context, base string) error {
			_, err := GitLab{BaseURL: base, Token: secret, Project: "shop/web", Timeout: 200 * time.Millisecond}.Upsert(ctx, 7, "body", marker)
			return err
		},
	}
	for name, upsert := range upserts {
		t.Run(name, func(t *testing.T) {
			base := silentServer(t)
			done := make(chan error, 1)
			go func() { done <- upsert(context.Background(), base) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "no complete response within 200ms") || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Upsert(silent server) = %v, want an error saying no response came within 200ms", err)
				}
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error holds the token: %v", err)
				}
				t.Log(err)
			case <-time.After(30 * time.Second):
				t.Fatal("Upsert against a server that never answers did not return")
			}
		})
	}
}

// TestUpsertCallerCancelIsNotATimeout checks that a cancelled caller is told
// so, not that the API was slow.
func TestUpsertCallerCancelIsNotATimeout(t *testing.T) {
	base := silentServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := GitHub{BaseURL: base, Token: "tok3n", Repo: "shop/web", Timeout: time.Hour}.Upsert(ctx, 7, "body", marker)
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "no complete response") {
		t.Fatalf("Upsert(cancelled) = %v, want context.Canceled without a timeout message", err)
	}
}
