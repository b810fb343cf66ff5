package localcluster

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds a start from a test helper, including a cold build of the
// tools (about 11 minutes on 2 cores).
const startTimeout = 30 * time.Minute

// Suite shares one set of clusters among the tests of one package. Declare it in
// the test package and hand it to TestMain:
//
//	var clusters = localcluster.NewSuite(localcluster.DefaultOptions())
//
//	func TestMain(m *testing.M) { os.Exit(clusters.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		env := clusters.Env(t) // skips under -short
//		...
//	}
//
// The clusters start on the first call to Env, so a run that selects no test
// needing them (-short, or -run picking unit tests) starts nothing; Run stops them
// after the last test. Tests share the clusters: use a namespace or release name of
// your own, and a test that stops an apiserver must not run in parallel with
// others and must start it again (or use StartForTest instead).
//
// If the test binary dies without reaching the end of Run (a panic, a -timeout),
// the kernel kills the cluster processes with it (Linux) and the next Start removes
// the files left behind.
type Suite struct {
	opts Options

	once sync.Once
	env  *Env
	err  error
}

// NewSuite returns a Suite that will start clusters with opts. A nil opts.Log
// prints progress to stderr, which go test shows with -v or on failure.
func NewSuite(opts Options) *Suite {
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	return &Suite{opts: opts}
}

// Run runs the tests, then stops the clusters if any test started them. It returns
// the exit code for os.Exit; a failed stop turns success into failure.
func (s *Suite) Run(m *testing.M) int {
	code := m.Run()
	// Every test has returned: nothing calls once.Do any more.
	if s.env != nil {
		if err := s.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Env returns the shared clusters, starting them on first use. Under -short it
// skips the test; if the clusters could not start it fails the test (and every
// later caller) with the reason.
func (s *Suite) Env(t testing.TB) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("localcluster: -short skips tests that start Kubernetes clusters")
	}
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		s.env, s.err = Start(ctx, s.opts)
	})
	if s.err != nil {
		t.Fatalf("start clusters: %v", s.err)
	}
	return s.env
}

// StartForTest starts clusters for t alone and stops them when t and its subtests
// have finished. It skips t under -short. Use it for tests that break clusters on
// purpose; a Suite is cheaper for everything else.
func StartForTest(t testing.TB, opts Options) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("localcluster: -short skips tests that start Kubernetes clusters")
	}
	if opts.Log == nil {
		opts.Log = testLogWriter{t}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	env, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start clusters: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	return env
}

// testLogWriter sends progress lines to t.Log.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	if n := len(p); n > 0 && p[n-1] == '\n' {
		return p[:n-1]
	}
	return p
}
