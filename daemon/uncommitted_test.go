package daemon

import (
	"slices"
	"testing"
)

// TestWorkingTreeRunsNameNoAppliedCommit: a daemon serving a working tree
// (--manifest-dir) applies files no commit may hold, so its runs say so and
// the state records name no applied commit; one following a git ref does
// not.
func TestWorkingTreeRunsNameNoAppliedCommit(t *testing.T) {
	for _, volatile := range []bool{false, true} {
		src := &fakeSource{head: "c1", volatile: volatile}
		pipe := &fakePipeline{}
		_, halt := start(t, src, pipe, nil)
		eventually(t, "first run", func() bool { return len(pipe.runs()) >= 1 })
		halt()
		pipe.mu.Lock()
		got := slices.Clone(pipe.uncommitted)
		pipe.mu.Unlock()
		if len(got) == 0 || got[0] != volatile {
			t.Errorf("source volatile %v: runs' Uncommitted %v, want %v", volatile, got, volatile)
		}
	}
}
