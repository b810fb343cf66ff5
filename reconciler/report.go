package reconciler

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Outcome is how one release's step ended.
type Outcome string

const (
	OutcomeOK      Outcome = "ok"
	OutcomeFailed  Outcome = "failed"
	OutcomeSkipped Outcome = "skipped"
	OutcomePlanned Outcome = "planned" // dry run: would run
)

// Report is the result of one reconcile, as data. Its JSON form is the stable
// schema of `tandem reconcile -o json` (documented in the README).
type Report struct {
	Commit   string          `json:"commit"`
	Ref      string          `json:"ref,omitempty"`
	DryRun   bool            `json:"dryRun"`
	Started  time.Time       `json:"started"`
	Duration Duration        `json:"duration"`
	Clusters []ClusterReport `json:"clusters"`
	// Switchover is the switchover this run made because the roles in git
	// differ from the roles in effect; nil when roles did not change.
	Switchover *SwitchoverReport `json:"switchover,omitempty"`
}

// ClusterReport is one cluster's part of a Report.
type ClusterReport struct {
	Name     string          `json:"name"`
	Role     string          `json:"role"`
	Commit   string          `json:"commit"`
	Releases []ReleaseReport `json:"releases"`
	Pruned   []ReleaseReport `json:"pruned,omitempty"`
	Counts   Counts          `json:"counts"`
	// Error is set when the cluster as a whole failed (unreachable, lock held,
	// a release failed, prune refused); the releases say which parts did run.
	Error string `json:"error,omitempty"`
	// Requests is the number of API requests made to this cluster.
	Requests int64    `json:"apiRequests"`
	Duration Duration `json:"duration"`
	// LockedAt is when this run took the cluster's lock (zero in a dry run or
	// when it never got it); FinishedAt is when it was done with the cluster.
	LockedAt   *time.Time `json:"lockedAt,omitempty"`
	FinishedAt time.Time  `json:"finishedAt"`
	// Guard is what the run did to the cluster's Standby guard; nil when
	// the cluster has none and needs none.
	Guard *GuardReport `json:"guard,omitempty"`
}

// Failed reports whether anything went wrong on the cluster.
func (c ClusterReport) Failed() bool { return c.Error != "" }

// ReleaseReport is one release's part of a ClusterReport.
type ReleaseReport struct {
	Name      string  `json:"name"`
	Namespace string  `json:"namespace"`
	Wave      int     `json:"wave"`
	Action    Action  `json:"action"`
	Outcome   Outcome `json:"outcome"`
	// FromRevision and Revision are the Helm revisions before and after.
	FromRevision int `json:"fromRevision,omitempty"`
	Revision     int `json:"revision,omitempty"`
	// Recovered is the stuck status cleared before this run's upgrade.
	Recovered string `json:"recovered,omitempty"`
	// Adopted is true when tandem took over an existing release.
	Adopted bool `json:"adopted,omitempty"`
	// RolledBackTo is the revision a failed upgrade was rolled back to.
	RolledBackTo int `json:"rolledBackTo,omitempty"`
	// Drifted lists objects whose live state differs from the release
	// ("Kind namespace/name"); Corrected those put back (--correct-drift).
	Drifted   []string `json:"drifted,omitempty"`
	Corrected []string `json:"corrected,omitempty"`
	// DriftCheck says how the drift check settled an unchanged release:
	// "versions" (not one of its objects was written since they were last
	// applied or found in their desired state: no object was read),
	// "fingerprint" (objects were written, but nothing a dry run compares
	// changed) or "dry-run" (every object was dry-run and compared).
	DriftCheck string   `json:"driftCheck,omitempty"`
	Error      string   `json:"error,omitempty"`
	Duration   Duration `json:"duration"`
}

// Counts summarise a cluster's releases.
type Counts struct {
	Installed int `json:"installed"`
	Upgraded  int `json:"upgraded"`
	Unchanged int `json:"unchanged"`
	Pruned    int `json:"pruned"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
	// Drifted counts releases with drifted objects; Corrected those put back.
	Drifted   int `json:"drifted"`
	Corrected int `json:"corrected"`
}

func (c *ClusterReport) count() {
	c.Counts = Counts{}
	for _, r := range c.Releases {
		switch {
		case r.Outcome == OutcomeFailed:
			c.Counts.Failed++
		case r.Outcome == OutcomeSkipped:
			c.Counts.Skipped++
		case r.Action == ActionInstall:
			c.Counts.Installed++
		case r.Action == ActionUpgrade:
			c.Counts.Upgraded++
		case r.Action == ActionUnchanged:
			c.Counts.Unchanged++
		}
	}
	for _, r := range c.Releases {
		if len(r.Drifted) > 0 {
			c.Counts.Drifted++
		}
		if len(r.Corrected) > 0 {
			c.Counts.Corrected++
		}
	}
	for _, r := range c.Pruned {
		if r.Outcome == OutcomeFailed {
			c.Counts.Failed++
		} else if r.Outcome == OutcomeOK || r.Outcome == OutcomePlanned {
			c.Counts.Pruned++
		}
	}
}

// Failed lists the clusters that failed.
func (r *Report) Failed() []string {
	var out []string
	for _, c := range r.Clusters {
		if c.Failed() {
			out = append(out, c.Name)
		}
	}
	return out
}

// Duration marshals as seconds with millisecond precision, so scripts need no
// Go duration parser.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(time.Duration(d).Seconds(), 'f', 3, 64)), nil
}

// UnmarshalJSON implements json.Unmarshaler, so a report read back (by a
// script in Go, or a test of the CLI) decodes into Report.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s float64
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want seconds as a number: %w", err)
	}
	*d = Duration(math.Round(s * float64(time.Second)))
	return nil
}

// Event is a progress notice from a running reconcile; the CLI prints them.
type Event struct {
	Time    time.Time
	Cluster string
	Role    string
	Release string
	Wave    int
	Action  Action
	// Phase is "start", "waiting", "done", "failed", "skipped" or "cluster" (a cluster-level notice).
	Phase        string
	FromRevision int
	Revision     int
	Duration     time.Duration
	Message      string
}
