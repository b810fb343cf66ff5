package reconciler

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/tandem-gitops/tandem/manifest"
)

// gates implement `rollout: standby-first`: an Active cluster applies a change
// to such a release only after every Standby cluster that runs it has applied
// it and found it healthy (or had nothing to change). Standby clusters never
// wait on Active ones, so gates cannot deadlock.
type gates struct {
	mu sync.Mutex
	// byRelease maps a release to its gate; immutable after newGates.
	byRelease map[ReleaseKey]*gate
}

type gate struct {
	done    chan struct{} // closed when every standby has reported
	pending map[string]bool
	// failures, guarded by gates.mu, say which standby clusters did not make it.
	failures []string
}

// newGates prepares a gate for every standby-first release, expecting a report
// from each Standby cluster that enables it. A Standby cluster left out of this
// run fails the gate at once: its health cannot be known.
func newGates(m *manifest.Manifest, selected []manifest.Cluster) *gates {
	inRun := map[string]bool{}
	for _, c := range selected {
		inRun[c.Name] = true
	}
	g := &gates{byRelease: map[ReleaseKey]*gate{}}
	for _, rel := range m.Releases {
		if rel.Rollout != manifest.RolloutStandbyFirst {
			continue
		}
		gt := &gate{done: make(chan struct{}), pending: map[string]bool{}}
		for _, c := range m.Clusters {
			if c.Role != manifest.RoleStandby || !enabled(m, c, rel) {
				continue
			}
			if !inRun[c.Name] {
				gt.failures = append(gt.failures, fmt.Sprintf("standby cluster %s is not part of this run, so the change cannot be tried there first", c.Name))
				continue
			}
			gt.pending[c.Name] = true
		}
		if len(gt.pending) == 0 {
			close(gt.done)
		}
		g.byRelease[keyOfRelease(rel)] = gt
	}
	return g
}

func enabled(m *manifest.Manifest, c manifest.Cluster, rel manifest.Release) bool {
	for _, r := range m.ReleasesFor(c.Name) {
		if r.Name == rel.Name && r.Namespace == rel.Namespace {
			return true
		}
	}
	return false
}

// report records a Standby cluster's outcome for a release; reports from
// Active clusters, for releases without a gate, or repeated ones are ignored.
func (g *gates) report(cluster string, rel manifest.Release, ok bool, msg string) {
	gt := g.byRelease[keyOfRelease(rel)]
	if gt == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !gt.pending[cluster] {
		return
	}
	delete(gt.pending, cluster)
	if !ok {
		gt.failures = append(gt.failures, fmt.Sprintf("not healthy on standby cluster %s: %s", cluster, msg))
	}
	if len(gt.pending) == 0 {
		close(gt.done)
	}
}

// closeCluster fails every gate a cluster has not reported on yet (it failed
// before reaching those releases).
func (g *gates) closeCluster(cluster, why string) {
	if why == "" {
		why = "the cluster's run ended before this release"
	}
	for key, gt := range g.byRelease {
		g.mu.Lock()
		pending := gt.pending[cluster]
		g.mu.Unlock()
		if pending {
			g.report(cluster, manifest.Release{Name: key.Name, Namespace: key.Namespace}, false, why)
		}
	}
}

// wait blocks until every Standby cluster has reported on rel, and returns an
// error if any of them failed.
func (g *gates) wait(ctx context.Context, rel manifest.Release) error {
	gt := g.byRelease[keyOfRelease(rel)]
	if gt == nil {
		return nil
	}
	select {
	case <-gt.done:
	case <-ctx.Done():
		return fmt.Errorf("standby-first: %w", ctx.Err())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(gt.failures) > 0 {
		f := append([]string(nil), gt.failures...)
		sort.Strings(f)
		return fmt.Errorf("standby-first: not applied here because %s", strings.Join(f, "; "))
	}
	return nil
}

// excuse stops every gate from waiting on cluster: a Standby declared lost
// (tandem reconcile --source-lost) will not try a change first again.
func (g *gates) excuse(cluster string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, gt := range g.byRelease {
		if gt.pending[cluster] {
			delete(gt.pending, cluster)
			if len(gt.pending) == 0 {
				close(gt.done)
			}
		}
	}
}
