package clusters

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestStateJSONFieldNames pins the stored format: field names may be added,
// never renamed.
func TestStateJSONFieldNames(t *testing.T) {
	s := State{
		Cluster: "blue", Role: "active", Commit: "abc123", Ref: "main",
		AppliedAt: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		Releases: []ReleaseState{{
			Name: "web", Namespace: "shop", Digest: "d1", Revision: 3, Outcome: "ok", Error: "boom", Duration: 1500 * time.Millisecond,
		}},
		LastError: "last",
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cluster":"blue","role":"active","commit":"abc123","ref":"main","appliedAt":"2026-11-23T12:00:00Z",` +
		`"releases":[{"name":"web","namespace":"shop","digest":"d1","revision":3,"outcome":"ok","error":"boom","duration":1500000000}],` +
		`"lastError":"last"}`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("State JSON (-want +got):\n%s", diff)
	}
}
