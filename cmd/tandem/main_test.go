package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestMain lets the test binary serve as its own render worker: the
// commands render in worker processes started from /proc/self/exe with
// the render-worker command, which in a test is this binary. Started
// through a link named tandem, it is tandem, for tests that run the CI
// examples' shell steps.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "render-worker" || filepath.Base(os.Args[0]) == "tandem" {
		os.Exit(run(context.Background(), os.Args[1:], streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
	}
	os.Exit(m.Run())
}
