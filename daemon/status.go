package daemon

import (
	"slices"
	"time"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// Status is what the daemon knows, as /status serves it (JSON; fields may be
// added, never renamed).
type Status struct {
	// Ref is the followed branch (or directory).
	Ref string `json:"ref"`
	// Leader is who holds the daemon Lease ("" without --leader-elect);
	// IsLeader says whether that is this replica.
	Leader   string `json:"leader,omitempty"`
	IsLeader bool   `json:"isLeader"`
	// CommitSeen is where the ref pointed at the last check.
	CommitSeen    string    `json:"commitSeen,omitempty"`
	LastPoll      time.Time `json:"lastPoll,omitzero"`
	LastPollError string    `json:"lastPollError,omitempty"`
	// Rejected is the last commit that did not load, validate or render:
	// it was not applied, and the clusters stay at the last good commit.
	Rejected *Rejected `json:"rejected,omitempty"`
	// Running is the run in flight; LastRun the last finished one.
	Running *Run `json:"running,omitempty"`
	LastRun *Run `json:"lastRun,omitempty"`
	// Clusters hold each cluster's last report.
	Clusters []ClusterState `json:"clusters"`
	// Draining is set once a shutdown began: no new run starts.
	Draining bool `json:"draining,omitempty"`
}

// Rejected is a commit that was not applied, and why.
type Rejected struct {
	Commit string    `json:"commit"`
	Error  string    `json:"error"`
	At     time.Time `json:"at"`
}

// Run is one reconcile the daemon started.
type Run struct {
	Commit   string              `json:"commit"`
	Trigger  string              `json:"trigger"`
	Started  time.Time           `json:"started"`
	Duration reconciler.Duration `json:"duration"`
	Error    string              `json:"error,omitempty"`
}

// ClusterState is one cluster as the daemon last left it.
type ClusterState struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// CommitApplied is the last commit applied to the cluster without a
	// failure; Report.Commit the last one tried.
	CommitApplied string `json:"commitApplied,omitempty"`
	// Drifted counts the releases with objects changed outside git.
	Drifted   int    `json:"drifted"`
	LastError string `json:"lastError,omitempty"`
	// Report is the cluster's part of the last run, in the
	// `tandem reconcile -o json` schema.
	Report *reconciler.ClusterReport `json:"report,omitempty"`
}

// record folds a run's report into the per-cluster states.
func (s *Status) record(m *manifest.Manifest, rep *reconciler.Report) {
	for _, c := range rep.Clusters {
		i := slices.IndexFunc(s.Clusters, func(x ClusterState) bool { return x.Name == c.Name })
		if i < 0 {
			s.Clusters = append(s.Clusters, ClusterState{Name: c.Name})
			i = len(s.Clusters) - 1
		}
		cs := &s.Clusters[i]
		cs.Role = c.Role
		cs.Drifted = c.Counts.Drifted - c.Counts.Corrected
		cs.LastError = c.Error
		if !c.Failed() {
			cs.CommitApplied = rep.Commit
		}
		cr := c
		cs.Report = &cr
	}
	// Clusters the manifest no longer lists leave the status.
	s.Clusters = slices.DeleteFunc(s.Clusters, func(x ClusterState) bool {
		_, ok := m.Cluster(x.Name)
		return !ok
	})
}

// copy returns a deep enough copy for readers outside the lock.
func (s Status) copy() Status {
	out := s
	out.Clusters = slices.Clone(s.Clusters)
	if s.Rejected != nil {
		r := *s.Rejected
		out.Rejected = &r
	}
	if s.Running != nil {
		r := *s.Running
		out.Running = &r
	}
	if s.LastRun != nil {
		r := *s.LastRun
		out.LastRun = &r
	}
	return out
}
