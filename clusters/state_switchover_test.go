package clusters

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestStateJSONSwitchoverFields pins the names of the switchover fields: the
// record is a stored format, read back by a resumed switchover.
func TestStateJSONSwitchoverFields(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s := State{
		Cluster: "blue", Role: "active", Commit: "abc123", AppliedAt: at,
		Switchover: &SwitchoverState{From: []string{"blue"}, To: []string{"green"}, Commit: "def456", Phase: 3, PhaseName: "close",
			PhaseDone: true, Blocked: "b", Skipped: []string{"5 cool blue: unreachable"}, StartedAt: at, UpdatedAt: at.Add(time.Minute)},
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cluster":"blue","role":"active","commit":"abc123","appliedAt":"2026-11-23T12:00:00Z","releases":null,` +
		`"switchover":{"from":["blue"],"to":["green"],"commit":"def456","phase":3,"phaseName":"close","phaseDone":true,` +
		`"blocked":"b","skipped":["5 cool blue: unreachable"],"startedAt":"2026-11-23T12:00:00Z","updatedAt":"2026-11-23T12:01:00Z"}}`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("State JSON (-want +got):\n%s", diff)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
