package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// servingReader is what reading a cluster's live DNS weights and CronJobs
// needs; ClusterTarget has it through *clusters.Cluster. A Target without
// it (a test fake) is reported as not readable.
type servingReader interface {
	ReadServing(ctx context.Context, opts clusters.ServingOptions) (*clusters.Serving, error)
}

// LiveStatus is where a cluster stands with respect to switchovers: its
// role in git and in effect, any switchover under way, and what it serves,
// read back from its live objects. `tandem status` shows it.
type LiveStatus struct {
	Cluster      string `json:"cluster"`
	RoleInGit    string `json:"roleInGit"`
	RoleInEffect string `json:"roleInEffect,omitempty"`
	// Switchover is the switchover its state record shows under way.
	Switchover *clusters.SwitchoverState `json:"switchover,omitempty"`
	// DNSWeights is the live weight per hostname (the lowest where the
	// cluster's objects disagree).
	DNSWeights map[string]int `json:"dnsWeights"`
	// CronJobs counts the cluster's tandem CronJobs, CronJobsSuspended the suspended ones.
	CronJobs          int `json:"cronJobs"`
	CronJobsSuspended int `json:"cronJobsSuspended"`
	// HeldScaledUp counts workloads tandem holds at zero (on a Standby)
	// that have replicas above zero anyway: those that carry the marker,
	// and, on a cluster Standby in effect with no switchover under way,
	// every workload of a scale-to-zero release, marker or not (a person
	// who got past the guard dropped it; see scaledUpOnStandby).
	HeldScaledUp int    `json:"heldScaledUp"`
	Error        string `json:"error,omitempty"`
}

// servingOptions read the objects of m's releases with m's DNS prefix.
func servingOptions(m *manifest.Manifest) clusters.ServingOptions {
	o := clusters.DefaultServingOptions()
	if m.DNS.AnnotationPrefix != "" {
		o.AnnotationPrefix = m.DNS.AnnotationPrefix
	}
	o.ReleaseLabel = render.LabelRelease
	return o
}

// readServing reads what t serves.
func readServing(ctx context.Context, m *manifest.Manifest, t Target) (*clusters.Serving, error) {
	sr, ok := t.(servingReader)
	if !ok {
		return nil, fmt.Errorf("cluster %q: cannot read live DNS weights", t.Name())
	}
	return sr.ReadServing(ctx, servingOptions(m))
}

// ReadLive reads, for each status row (from ReadStatuses), the cluster's
// live DNS weights and CronJobs, concurrently; the role in effect and the
// switchover come from the row's state record. Rows whose cluster could
// not be read get an error of their own.
func ReadLive(ctx context.Context, m *manifest.Manifest, connect Connector, rows []ClusterStatus) ([]LiveStatus, error) {
	out := make([]LiveStatus, len(rows))
	errs := make([]error, len(rows))
	var wg sync.WaitGroup
	for i, row := range rows {
		ls := LiveStatus{Cluster: row.Name, RoleInGit: row.Role, DNSWeights: map[string]int{}}
		if row.State != nil {
			ls.RoleInEffect, ls.Switchover = string(roleInEffect(row.Name, row.State)), underWay(row.State)
		}
		out[i] = ls
		if row.Error != "" {
			continue // already reported by the status row
		}
		c, ok := m.Cluster(row.Name)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t, err := connect(ctx, c)
			if err == nil {
				var s *clusters.Serving
				if s, err = readServing(ctx, m, t); err == nil {
					out[i].DNSWeights = s.Weights()
					out[i].CronJobsSuspended, out[i].CronJobs = s.SuspendedCronJobs()
					standby := manifest.Role(ls.RoleInEffect) == manifest.RoleStandby || ls.RoleInEffect == "" && manifest.Role(ls.RoleInGit) == manifest.RoleStandby
					out[i].HeldScaledUp = scaledUpOnStandby(m, c.Name, standby && ls.Switchover == nil, s)
					return
				}
			}
			out[i].Error, errs[i] = err.Error(), err
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// scaledUpOnStandby counts a cluster's workloads with replicas above zero
// that tandem holds at zero: those that carry its marker and, when the
// cluster is a Standby outside a switchover (standby), every workload of a
// release the cluster runs scaled to zero, by the release label tandem
// puts on its objects. Pure.
func scaledUpOnStandby(m *manifest.Manifest, cluster string, standby bool, s *clusters.Serving) int {
	held := map[string]bool{}
	if standby {
		for _, rel := range m.ReleasesFor(cluster) {
			if rel.Standby != manifest.StandbyKeep {
				held[rel.Namespace+"/"+rel.Name] = true
			}
		}
	}
	n := 0
	for _, w := range s.Workloads {
		if w.Replicas > 0 && (w.Held || held[w.Release]) {
			n++
		}
	}
	return n
}
