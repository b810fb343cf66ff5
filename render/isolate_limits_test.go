//go:build linux

package render

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

// vmRSS returns this process's resident set, in bytes.
func vmRSS(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// TestIsolatedMemoryBombFails: a template that doubles a string in a range
// fails its release's render with the memory error, before its deadline;
// its worker is dead and reaped, and this process, the parent, did not
// grow with it.
func TestIsolatedMemoryBombFails(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	opts := isolated(t, "serve")
	opts.Isolation.MemoryLimit = 256 << 20
	opts.Timeout = 60 * time.Second // a bound against a hang: the limit must come first
	r := New(opts)
	workers := watchWorkers(r)
	before := vmRSS(t)
	_, err := r.Render(context.Background(), testdataRequest(t, "memorybomb"))
	grew := vmRSS(t) - before
	want := `cluster "blue": release "r": render used more than 256 MiB (Isolation.MemoryLimit); its worker was stopped`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	t.Logf("the parent's resident set grew by %d MiB", grew>>20)
	if grew > 128<<20 {
		t.Errorf("the parent's resident set grew by %d MiB while its worker blew up", grew>>20)
	}
	assertReaped(t, workers.all())
}

// TestIsolatedRenderUnderTightMemoryLimit: the Go runtime of a worker, and
// a render of the example chart, fit well within a limit far below the
// default (RLIMIT_AS, counting the address space Go reserves, would not).
func TestIsolatedRenderUnderTightMemoryLimit(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	opts := isolated(t, "serve")
	opts.Isolation.MemoryLimit = 256 << 20
	req := exampleRequest(t, "blue", RoleActive)
	want, err := New(DefaultOptions()).Render(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := New(opts).Render(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != want.Digest || got.Manifest != want.Manifest {
		t.Errorf("the isolated render differs from the in-process one (-want +got):\n%s", cmp.Diff(want.Manifest, got.Manifest))
	}
}

// TestIsolatedOutputTooLarge: an answer past MaxOutput fails the render
// with an error that says so; the same chart renders within the default.
func TestIsolatedOutputTooLarge(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	opts := isolated(t, "serve")
	opts.Isolation.MaxOutput = 128 << 10
	opts.Timeout = 2 * time.Minute // Helm parses the long manifest slowly under -race
	r := New(opts)
	workers := watchWorkers(r)
	_, err := r.Render(context.Background(), testdataRequest(t, "bigoutput"))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, w := range []string{`cluster "blue": release "r": render output of `, ` bytes is more than the 128 KiB limit (Isolation.MaxOutput)`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	assertReaped(t, workers.all())

	opts = isolated(t, "serve")
	opts.Timeout = 2 * time.Minute
	res, err := New(opts).Render(context.Background(), testdataRequest(t, "bigoutput"))
	if err != nil {
		t.Fatalf("within the default MaxOutput: %v", err)
	}
	if len(res.Manifest) < 192<<10 {
		t.Errorf("manifest of %d bytes, want over 192 KiB", len(res.Manifest))
	}
}

// TestIsolatedMaxWorkers: a RenderAll runs no more workers than
// MaxWorkers, by default min(Concurrency, DefaultMaxWorkers), however many
// renders run at once.
func TestIsolatedMaxWorkers(t *testing.T) {
	for _, tt := range []struct {
		name        string
		concurrency int
		maxWorkers  int
		want        int
	}{
		{name: "default", concurrency: 8, want: DefaultMaxWorkers},
		{name: "configured", concurrency: 8, maxWorkers: 2, want: 2},
		{name: "concurrency below the default", concurrency: 1, want: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			opts := isolated(t, "serve")
			opts.Concurrency = tt.concurrency
			opts.Isolation.MaxWorkers = tt.maxWorkers
			r := New(opts)
			workers := watchWorkers(r)
			var reqs []Request
			for i := range 16 {
				req := testdataRequest(t, "cronjob")
				req.Cluster = fmt.Sprintf("c%02d", i)
				reqs = append(reqs, req)
			}
			if _, err := r.RenderAll(context.Background(), reqs); err != nil {
				t.Fatal(err)
			}
			pids := workers.all()
			t.Logf("%d workers started", len(pids))
			if len(pids) > tt.want {
				t.Errorf("%d workers started, want at most %d", len(pids), tt.want)
			}
			assertReaped(t, pids)
		})
	}
}

func TestIsolationWithDefaults(t *testing.T) {
	for _, tt := range []struct {
		name        string
		iso         Isolation
		concurrency int
		want        Isolation
	}{
		{name: "zero", concurrency: 16, want: Isolation{MemoryLimit: DefaultWorkerMemoryLimit, MaxOutput: DefaultWorkerMaxOutput, MaxWorkers: 4}},
		{name: "low concurrency", concurrency: 2, want: Isolation{MemoryLimit: DefaultWorkerMemoryLimit, MaxOutput: DefaultWorkerMaxOutput, MaxWorkers: 2}},
		{name: "set", iso: Isolation{MemoryLimit: 1 << 20, MaxOutput: 2 << 20, MaxWorkers: 9}, concurrency: 2,
			want: Isolation{MemoryLimit: 1 << 20, MaxOutput: 2 << 20, MaxWorkers: 9}},
		{name: "no memory limit, output past a frame", iso: Isolation{MemoryLimit: -1, MaxOutput: 1 << 40}, concurrency: 1,
			want: Isolation{MemoryLimit: -1, MaxOutput: maxFrame, MaxWorkers: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.iso.withDefaults(tt.concurrency)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if got, want := memoryLimitEnv(1<<30), []string{"GOMEMLIMIT=939524096"}; !cmp.Equal(got, want) {
		t.Errorf("memoryLimitEnv(1 GiB) = %q, want %q", got, want)
	}
	for n, want := range map[int64]string{1 << 30: "1024 MiB", 256 << 10: "256 KiB", 1<<20 + 1: "1048577 bytes"} {
		if got := mib(n); got != want {
			t.Errorf("mib(%d) = %q, want %q", n, got, want)
		}
	}
	if got := memoryLimitEnv(-1); got != nil {
		t.Errorf("memoryLimitEnv(-1) = %q, want none", got)
	}
}

// TestTailBufferMarks: a mark is seen wherever the writes split it, and
// after the tail has dropped it.
func TestTailBufferMarks(t *testing.T) {
	text := "fatal error: runtime: out of memory\n\ngoroutine 1 [running]:\n" + strings.Repeat("frame\n", 1000)
	for _, chunk := range []int{1, 3, 7, 64, len(text)} {
		b := &tailBuffer{max: 256, marks: outOfMemoryMarks}
		for s := text; s != ""; {
			n := min(chunk, len(s))
			_, _ = b.Write([]byte(s[:n]))
			s = s[n:]
		}
		if !b.marked() {
			t.Errorf("writes of %d bytes: the mark was not seen", chunk)
		}
		if strings.Contains(b.String(), "out of memory") {
			t.Errorf("writes of %d bytes: the tail still holds the mark", chunk)
		}
	}
	b := &tailBuffer{max: 256, marks: outOfMemoryMarks}
	_, _ = b.Write([]byte("render worker: read: EOF\n"))
	if b.marked() {
		t.Error("a mark was seen in text without one")
	}
}
