package serve_test

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// Short leader election timing, so that a failover takes seconds.
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

// leaderFlags elect a leader through Lease lease in tandem-system on blue.
func leaderFlags(lease string) []string {
	return []string{"--leader-elect", "--leader-elect-context", "blue", "--leader-elect-lease", lease,
		"--leader-elect-lease-duration", leaseDuration.String(), "--leader-elect-renew-deadline", renewDeadline.String(),
		"--leader-elect-retry-period", retryPeriod.String()}
}

// Two replicas with --leader-elect: exactly one reconciles; kill -9 the
// leader and the other takes over within a few lease durations and applies
// a newly pushed commit. The failover time (kill → the new leader's /status
// says so) is logged; the bound on it is generous.
func TestServeLeaderElection(t *testing.T) {
	h := newHarness(t)
	h.ensureNamespace(t, "blue", systemNamespace)
	r := h.exampleRemote(t, "leader")
	const lease = "e2e-serve-leader"
	flags := append([]string{"--repo", r.URL, "--interval", "1s"}, leaderFlags(lease)...)
	a := h.startServe(t, "a", flags...)
	b := h.startServe(t, "b", flags...)
	replicas := []*serveProc{a, b}

	var leader, follower *serveProc
	var leaderID string
	waitFor(t, "one replica leads and applies the first commit", firstRunTimeout, replicas, func() error {
		sa, err := a.tryStatus()
		if err != nil {
			return err
		}
		sb, err := b.tryStatus()
		if err != nil {
			return err
		}
		switch {
		case sa.IsLeader && sb.IsLeader:
			t.Fatalf("both replicas say they lead: a %q, b %q", sa.Leader, sb.Leader)
		case sa.IsLeader:
			leader, follower, leaderID = a, b, sa.Leader
			return applied(sa, r.Head, []string{"blue", "green"})
		case sb.IsLeader:
			leader, follower, leaderID = b, a, sb.Leader
			return applied(sb, r.Head, []string{"blue", "green"})
		}
		return errors.New("no replica leads yet")
	})
	t.Logf("replica %s leads as %s", leader.name, leaderID)
	if holder, live := h.leaseHolder(t, "blue", systemNamespace, lease); holder != leaderID || !live {
		t.Errorf("Lease %s/%s on blue: holder %q (live %v), want %q", systemNamespace, lease, holder, live, leaderID)
	}

	setExampleReplicas(t, r, 4)
	second := r.Push(t, "example: 4 replicas")
	leader.waitApplied(t, second, runTimeout)
	if err := h.exampleAt(t, 4); err != nil {
		t.Error(err)
	}
	fs := follower.status(t)
	if fs.IsLeader || fs.Leader != leaderID || len(fs.Clusters) != 0 || fs.LastRun != nil {
		t.Errorf("follower %s /status: isLeader %v, leader %q, %d clusters, last run %+v; want a follower of %q that never ran",
			follower.name, fs.IsLeader, fs.Leader, len(fs.Clusters), fs.LastRun, leaderID)
	}
	lm, fm := leader.metrics(t), follower.metrics(t)
	if got := lm.sum("tandem_reconcile_total", nil); got < 4 {
		t.Errorf("leader %s: tandem_reconcile_total = %v, want at least 4 (two runs, two clusters)", leader.name, got)
	}
	for name, want := range map[string]float64{"tandem_reconcile_total": 0, "tandem_git_poll_total": 0, "tandem_leader": 0} {
		if got := fm.sum(name, nil); got != want {
			t.Errorf("follower %s: %s = %v, want %v", follower.name, name, got, want)
		}
	}
	if got := lm.sum("tandem_leader", nil); got != 1 {
		t.Errorf("leader %s: tandem_leader = %v, want 1", leader.name, got)
	}
	if t.Failed() {
		t.FailNow()
	}

	leader.kill9(t)
	killed := time.Now()
	var newID string
	waitFor(t, "the follower takes over", 15*leaseDuration, []*serveProc{follower}, func() error {
		st, err := follower.tryStatus()
		if err != nil {
			return err
		}
		if !st.IsLeader {
			return fmt.Errorf("follower %s: leader %q, not itself", follower.name, st.Leader)
		}
		newID = st.Leader
		return nil
	})
	failover := time.Since(killed)
	if newID == leaderID || newID == "" {
		t.Errorf("new leader identity %q, want one other than the killed %q", newID, leaderID)
	}

	setExampleReplicas(t, r, 5)
	third := r.Push(t, "example: 5 replicas")
	follower.waitApplied(t, third, runTimeout)
	appliedAfter := time.Since(killed)
	if err := h.exampleAt(t, 5); err != nil {
		t.Error(err)
	}
	if got := follower.metrics(t).sum("tandem_reconcile_total", nil); got < 2 {
		t.Errorf("new leader %s: tandem_reconcile_total = %v, want at least 2 (one run, two clusters)", follower.name, got)
	}
	t.Logf("failover: kill -9 of the leader → the other replica's /status says it leads in %s (lease duration %s, renew deadline %s, retry period %s); a commit pushed after the kill applied on both clusters %s after the kill",
		failover.Round(time.Millisecond), leaseDuration, renewDeadline, retryPeriod, appliedAfter.Round(time.Millisecond))
}
