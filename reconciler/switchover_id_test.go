package reconciler

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/tandem-gitops/tandem/clusters"
)

// idFake keeps a state record per manifest ID, as the clusters do: the
// fake's own record is manifest "shop"'s.
type idFake struct {
	liveFake
	mu    *sync.Mutex
	other map[string]*clusters.State
}

func (f idFake) ReadState(ctx context.Context, id string) (*clusters.State, error) {
	if id == "shop" {
		return f.liveFake.ReadState(ctx, id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.other[id], nil
}

func (f idFake) WriteState(ctx context.Context, st clusters.State) error {
	if st.ManifestID == "shop" {
		return f.liveFake.WriteState(ctx, st)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.other[st.ManifestID] = &st
	return nil
}

// Finding 7: one commit renames the manifest (id) and flips the roles. No
// record exists under the new id, so the roles in effect were unknown and
// the commit ran as a plain flip while diff --against showed a switchover.
// It is refused, naming tandem.yaml and both fields, with nothing written;
// the id change alone is applied.
func TestIDChangeWithRolesRefused(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	others := map[string]map[string]*clusters.State{"blue": {}, "green": {}}
	var mu sync.Mutex
	wrap := func(f *fakeTarget) Target { return idFake{liveFake{f}, &mu, others[f.name]} }
	m := swManifest()
	m.ID = "shop2"
	for i := range m.Releases {
		m.Releases[i].Adopt = true // the id change alone is then applied
	}
	log.ops = nil
	rep := reconcileWrapped(t, m, fakes, wrap, "")
	if len(rep.Failed()) != 2 || len(writes(log)) > 0 {
		t.Fatalf("failed %v, writes %v: want both refused, nothing written", rep.Failed(), writes(log))
	}
	for _, c := range rep.Clusters {
		for _, want := range []string{"tandem.yaml", "id", `"shop"`, `"shop2"`, "role"} {
			if !strings.Contains(c.Error, want) {
				t.Errorf("%s: error %q does not name %s", c.Name, c.Error, want)
			}
		}
	}
	if len(others["blue"])+len(others["green"]) > 0 {
		t.Errorf("records written under the new id: %v %v", others["blue"], others["green"])
	}
	m.Clusters[0].Role, m.Clusters[1].Role = "active", "standby"
	if rep := reconcileWrapped(t, m, fakes, wrap, ""); len(rep.Failed()) > 0 || rep.Switchover != nil {
		t.Errorf("the id change alone: %+v %+v", rep.Switchover, rep.Clusters)
	}
}
