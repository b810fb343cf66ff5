package localcluster

import (
	"path/filepath"
	"testing"
	"time"
)

func TestParseProcStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{
			name: "etcd",
			// utime 1234 and stime 566 ticks of 10 ms.
			stat: "4242 (etcd) S 1 4242 4242 0 -1 4194560 9057 0 0 0 1234 566 0 0 20 0 14 0 123 0 0",
			want: 18 * time.Second,
		},
		{
			name: "a command name with spaces and parentheses",
			stat: "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 5 7 300 400 20 0 1 0 1 0 0",
			want: 120 * time.Millisecond, // the children's 300 and 400 ticks are not its own
		},
		{name: "no command name", stat: "4242 etcd S 1", wantErr: true},
		{name: "cut short", stat: "4242 (etcd) S 1 4242 4242 0 -1 4194560 9057 0 0 0 1234", wantErr: true},
		{name: "not a number", stat: "4242 (etcd) S 1 4242 4242 0 -1 4194560 9057 0 0 0 x 566 0", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStatCPU([]byte(tc.stat))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestProcessCPUTime reads a busy process's CPU time while it runs and once it
// has been stopped and reaped; the second is never less than the first.
func TestProcessCPUTime(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts processes")
	}
	p, err := startProcess("test/busy", "/bin/sh", []string{"-c", "while :; do :; done"}, filepath.Join(t.TempDir(), "busy.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.stop() })
	var running time.Duration
	for deadline := time.Now().Add(30 * time.Second); running == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		if running, err = p.cpuTime(); err != nil {
			t.Fatal(err)
		}
	}
	if running == 0 {
		t.Fatal("a busy loop used no CPU time in 30 s")
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	reaped, err := p.cpuTime()
	if err != nil {
		t.Fatal(err)
	}
	if reaped < running {
		t.Errorf("after stop: %s, less than the %s read while it ran", reaped, running)
	}
}

// TestClusterCPUTimesKeepStoppedProcesses sums a component's processes, the
// stopped ones too, as a restarted apiserver's are.
func TestClusterCPUTimesKeepStoppedProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts processes")
	}
	c := &cluster{name: "test"}
	start := func(name, script string) *process {
		p, err := startProcess(name, "/bin/sh", []string{"-c", script}, filepath.Join(t.TempDir(), "sh.log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.stop() })
		c.launched = append(c.launched, p)
		return p
	}
	first := start("test/sh-1", "while :; do :; done")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if d, err := first.cpuTime(); err != nil || d > 0 {
			break
		}
	}
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	firstCPU, err := first.cpuTime()
	if err != nil || firstCPU == 0 {
		t.Fatalf("stopped busy loop: %s, %v; want some CPU time", firstCPU, err)
	}
	second := start("test/sh-2", "sleep 300")

	times, err := c.cpuTimes()
	if err != nil {
		t.Fatal(err)
	}
	secondCPU, err := second.cpuTime()
	if err != nil {
		t.Fatal(err)
	}
	if len(times) != 1 || times[0].Cluster != "test" || times[0].Component != "sh" {
		t.Fatalf("times = %+v, want one entry for test/sh", times)
	}
	// The sleeping shell may have used a tick between the two reads.
	if got := times[0].CPU; got < firstCPU || got > firstCPU+secondCPU {
		t.Errorf("sh: %s, want the stopped process's %s plus the running one's (%s now)", got, firstCPU, secondCPU)
	}
}
