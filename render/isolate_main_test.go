package render

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"testing"
)

// testWorkerEnv makes the test binary a render worker: TestMain serves
// (or misbehaves, for the tests of broken workers) instead of running
// tests. The isolated tests pass it in Isolation.Env, since a worker
// inherits almost nothing of the parent's environment.
const testWorkerEnv = "TANDEM_RENDER_TEST_WORKER"

func TestMain(m *testing.M) {
	mode, ok := os.LookupEnv(testWorkerEnv)
	if !ok {
		os.Exit(m.Run())
	}
	os.Exit(testWorker(mode))
}

// testWorker is the test binary's life as a worker: mode "serve" is the
// real one; the others break the protocol in one way each.
func testWorker(mode string) int {
	out := bufio.NewWriter(os.Stdout)
	hello := func() { _ = writeFrame(out, msgHello, []byte(workerProtocol)) }
	readRequest := func() { _, _, _ = readFrame(bufio.NewReader(os.Stdin)) }
	switch mode {
	case "serve":
		if err := ServeWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "garbage": // not a worker at all: prints text and exits
		fmt.Println("Usage: something else entirely")
		return 0
	case "crash": // dies on its first request, with a word on stderr
		hello()
		readRequest()
		fmt.Fprintln(os.Stderr, "worker crashed on purpose")
		return 3
	case "babble": // answers its first request with a message of no known type
		hello()
		readRequest()
		_ = writeFrame(out, 'Z', []byte("babble"))
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	case "huge": // claims a frame far past maxFrame
		hello()
		readRequest()
		_, _ = out.Write([]byte{0xff, 0xff, 0xff, 0xff, msgAnswer})
		_ = out.Flush()
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	case "truncated": // starts an answer and dies in the middle of it
		hello()
		readRequest()
		_, _ = out.Write([]byte{0, 0, 1, 0, msgAnswer, 1, 2, 3})
		_ = out.Flush()
		return 0
	case "silent": // says hello, then never answers (but is alive)
		hello()
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown %s %q\n", testWorkerEnv, mode)
	return 2
}

// isolated returns DefaultOptions with Isolation running this test binary
// as the worker in mode (see testWorker). Tests that use it start
// processes, so -short skips them.
func isolated(t testing.TB, mode string) Options {
	t.Helper()
	if testing.Short() {
		t.Skip("starts render worker processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	// A worker built with -race sleeps a second on exit unless told not to.
	opts.Isolation = &Isolation{Command: []string{exe}, Env: []string{testWorkerEnv + "=" + mode, "GORACE=atexit_sleep_ms=0"}}
	return opts
}
