package reconciler

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
)

// ClusterStatus is what one cluster holds of a manifest: its state record
// and its tandem releases. Its JSON is `tandem status -o json`'s schema.
type ClusterStatus struct {
	Name     string          `json:"name"`
	Role     string          `json:"role"`
	State    *clusters.State `json:"state,omitempty"`
	Releases []ReleaseStatus `json:"releases"`
	Error    string          `json:"error,omitempty"`
}

// ReleaseStatus is one tandem release as Helm records it.
type ReleaseStatus struct {
	Name         string    `json:"name"`
	Namespace    string    `json:"namespace"`
	Revision     int       `json:"revision"`
	Status       string    `json:"status"`
	Chart        string    `json:"chart"`
	ChartVersion string    `json:"chartVersion"`
	Updated      time.Time `json:"updated"`
}

// ReadStatuses reads every cluster concurrently. It returns a row per
// cluster, in order, and the errors of those it could not read, one per
// cluster (each already naming its cluster).
func ReadStatuses(ctx context.Context, connect Connector, manifestID string, picked []manifest.Cluster) ([]ClusterStatus, error) {
	out := make([]ClusterStatus, len(picked))
	errs := make([]error, len(picked))
	var wg sync.WaitGroup
	for i, c := range picked {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = readStatus(ctx, connect, manifestID, c)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// readStatus reads one cluster's row; on error the row holds what was read
// and the error's text.
func readStatus(ctx context.Context, connect Connector, manifestID string, c manifest.Cluster) (ClusterStatus, error) {
	cs := ClusterStatus{Name: c.Name, Role: string(c.Role), Releases: []ReleaseStatus{}}
	fail := func(err error) (ClusterStatus, error) {
		cs.Error = err.Error()
		return cs, err
	}
	t, err := connect(ctx, c)
	if err != nil {
		return fail(err)
	}
	cs.State, err = t.ReadState(ctx, manifestID)
	if err != nil {
		return fail(err)
	}
	rels, err := t.ListReleases(ctx, map[string]string{LabelManagedBy: ManagedByValue})
	if err != nil {
		return fail(err)
	}
	for _, r := range rels {
		cs.Releases = append(cs.Releases, ReleaseStatus{Name: r.Name, Namespace: r.Namespace, Revision: r.Revision, Status: r.Status,
			Chart: r.Chart, ChartVersion: r.ChartVersion, Updated: r.Updated})
	}
	sort.Slice(cs.Releases, func(i, j int) bool {
		return cs.Releases[i].Namespace+"/"+cs.Releases[i].Name < cs.Releases[j].Namespace+"/"+cs.Releases[j].Name
	})
	return cs, nil
}
