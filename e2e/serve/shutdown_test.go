package serve_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// SIGTERM with a run in flight (an upgrade hanging in its pre-upgrade
// hook): the daemon stops taking work at once (/readyz 503), lets the run go
// on until --shutdown-timeout, then cancels it cleanly and exits 0, leaving
// no Helm release pending-*, the cluster locks and the leader Lease
// released. First with a run that ends by itself within the shutdown
// timeout (its release times out at 8s and is rolled back), then with one
// that would outlive it.
func TestServeSigtermMidReconcile(t *testing.T) {
	h := newHarness(t)
	h.ensureNamespace(t, "blue", systemNamespace)
	const ns = "e2e-serve-term"
	h.deleteNamespacesOnCleanup(t, ns)
	r := h.probeRemote(t, "sigterm", "e2e-serve-term", ns, "8s")
	const lease = "e2e-serve-term-leader"
	flags := append([]string{"--repo", r.URL, "--interval", "1s", "--lock-duration", "10s"}, leaderFlags(lease)...)

	t.Run("run ends within the shutdown timeout", func(t *testing.T) {
		d := h.startServe(t, "serve-1", append(flags, "--shutdown-timeout", "2m")...)
		d.waitApplied(t, r.Head, firstRunTimeout)
		setProbe(t, r.ManifestRepo, 2, true)
		stuck := r.Push(t, "slow: a pre-upgrade hook that never completes (release timeout 8s)")
		waitFor(t, "the upgrade hangs in its hook", runTimeout, []*serveProc{d}, func() error { return h.probeHangs(t, d, ns, stuck) })
		start := time.Now()
		d.sigterm(t)
		checkDraining(t, d)
		code := d.waitExit(t, 2*time.Minute)
		t.Logf("SIGTERM → exit %d after %s (the run in flight ended by itself)", code, time.Since(start).Round(time.Millisecond))
		if code != 0 {
			t.Errorf("exit %d after SIGTERM, want 0", code)
		}
		if d.log.find("shutdown timeout: cancelling the run in flight", nil) != nil {
			t.Errorf("the run in flight was cancelled; it should have ended by itself within the 2m shutdown timeout")
		}
		// The run went to its end: blue's upgrade failed at its timeout.
		if d.log.find("reconcile failed", map[string]string{"cluster": "blue", "commit": short(stuck)}) == nil {
			t.Errorf(`no log line "reconcile failed" for blue at %s: the run did not finish`, short(stuck))
		}
		checkCleanExit(t, h, d, ns, lease)
	})

	t.Run("run cancelled at the shutdown timeout", func(t *testing.T) {
		writeProbeManifest(t, r.ManifestRepo, "e2e-serve-term", ns, "1m")
		setProbe(t, r.ManifestRepo, 3, true)
		stuck := r.Push(t, "slow: a pre-upgrade hook that never completes (release timeout 1m)")
		const shutdownTimeout = 3 * time.Second
		d := h.startServe(t, "serve-2", append(flags, "--shutdown-timeout", shutdownTimeout.String())...)
		waitFor(t, "the upgrade hangs in its hook", firstRunTimeout, []*serveProc{d}, func() error { return h.probeHangs(t, d, ns, stuck) })
		start := time.Now()
		d.sigterm(t)
		checkDraining(t, d)
		code := d.waitExit(t, 2*time.Minute)
		took := time.Since(start)
		t.Logf("SIGTERM → exit %d after %s (--shutdown-timeout %s; the release's own timeout is 1m)", code, took.Round(time.Millisecond), shutdownTimeout)
		if code != 0 {
			t.Errorf("exit %d after SIGTERM, want 0", code)
		}
		// Generous: the cancel itself and the releases of locks and Lease take a few requests.
		if bound := shutdownTimeout + 30*time.Second; took > bound {
			t.Errorf("exit %s after SIGTERM; with --shutdown-timeout %s it should be well within %s", took.Round(time.Millisecond), shutdownTimeout, bound)
		}
		if d.log.find("shutdown timeout: cancelling the run in flight", nil) == nil {
			t.Errorf(`no log line "shutdown timeout: cancelling the run in flight"`)
		}
		checkCleanExit(t, h, d, ns, lease)
	})
}

// checkDraining checks that /readyz answers 503 soon after SIGTERM, while
// the run in flight goes on: a shutdown has begun.
func checkDraining(t *testing.T, d *serveProc) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	var code int
	var body []byte
	for time.Now().Before(deadline) && !d.exited() {
		var err error
		code, body, err = d.request(http.MethodGet, "/readyz", nil, nil)
		if err == nil && code == http.StatusServiceUnavailable {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("/readyz %d %q within a second of SIGTERM, with the run still in flight; want 503 once a shutdown began", code, strings.TrimSpace(string(body)))
}

// checkCleanExit checks what a daemon left after it exited: no Helm release
// pending-* (Helm's storage, and the stock helm CLI), every cluster's
// writer lock and the leader Lease released, and its "stopped" log line.
func checkCleanExit(t *testing.T, h *harness, d *serveProc, namespace, lease string) {
	t.Helper()
	if p := h.pending(t, namespace); len(p) > 0 {
		t.Errorf("Helm releases left pending:\n%s", strings.Join(p, "\n"))
	}
	for _, c := range h.env.Names() {
		var listed []struct{ Name, Namespace, Status string }
		out := h.helm(t, c, "list", "-A", "--pending", "-o", "json")
		if err := json.Unmarshal([]byte(out), &listed); err != nil {
			t.Fatalf("helm list: %v\n%s", err, out)
		}
		if len(listed) > 0 {
			t.Errorf("cluster %s: helm list -A --pending: %+v", c, listed)
		}
		if holder, _ := h.leaseHolder(t, c, systemNamespace, lockLease); holder != "" {
			t.Errorf("cluster %s: writer lock Lease %s/%s still held by %q", c, systemNamespace, lockLease, holder)
		}
	}
	if holder, _ := h.leaseHolder(t, "blue", systemNamespace, lease); holder != "" {
		t.Errorf("leader Lease %s/%s still held by %q", systemNamespace, lease, holder)
	}
	if d.log.find("stopped", nil) == nil {
		t.Errorf(`no log line "stopped"`)
	}
	for _, c := range h.env.Names() {
		s := h.storage(t, c, namespace)[releaseID{namespace, probeRelease}]
		t.Logf("cluster %s: release %s/%s left at revision %d %s", c, namespace, probeRelease, s.Revision, s.Status)
	}
}

// kill -9 of the leader with an upgrade hanging in its hook (Helm's storage
// says pending-upgrade); the fix is pushed; the other replica takes over and
// recovers: the release ends deployed at the newest commit on both clusters.
func TestServeKill9MidReconcileRecovers(t *testing.T) {
	h := newHarness(t)
	h.ensureNamespace(t, "blue", systemNamespace)
	const ns = "e2e-serve-kill"
	h.deleteNamespacesOnCleanup(t, ns)
	r := h.probeRemote(t, "kill", "e2e-serve-kill", ns, "1m")
	// A dead run's cluster locks are taken over 3s after they stopped changing.
	flags := append([]string{"--repo", r.URL, "--interval", "1s", "--lock-duration", "3s"}, leaderFlags("e2e-serve-kill-leader")...)
	a := h.startServe(t, "a", flags...)
	waitFor(t, "a leads", time.Minute, []*serveProc{a}, func() error {
		if st, err := a.tryStatus(); err != nil || !st.IsLeader {
			return fmt.Errorf("a does not lead yet (%v)", err)
		}
		return nil
	})
	a.waitApplied(t, r.Head, firstRunTimeout)
	b := h.startServe(t, "b", flags...)

	setProbe(t, r.ManifestRepo, 2, true)
	stuck := r.Push(t, "slow: a pre-upgrade hook that never completes")
	waitFor(t, "the upgrade hangs in its hook", runTimeout, []*serveProc{a, b}, func() error { return h.probeHangs(t, a, ns, stuck) })
	a.kill9(t)
	killed := time.Now()
	t.Logf("killed the leader with Helm's storage at %v", h.allStorage(t, ns))
	setProbe(t, r.ManifestRepo, 3, false)
	fixed := r.Push(t, "slow: generation 3, no hook")

	st := b.waitApplied(t, fixed, firstRunTimeout)
	t.Logf("kill -9 → the other replica applied the fix on both clusters after %s", time.Since(killed).Round(time.Millisecond))
	if !st.IsLeader {
		t.Errorf("b applied without leading: /status leader %q", st.Leader)
	}
	want := map[string]stored{}
	got := h.allStorage(t, ns)
	for _, c := range h.env.Names() {
		k := c + " " + ns + "/" + probeRelease
		if s := got[k]; s.Status != "deployed" {
			t.Errorf("cluster %s: release %s/%s at revision %d is %s, want deployed", c, ns, probeRelease, s.Revision, s.Status)
		}
		if g := h.probeGeneration(t, c, ns); g != "3" {
			t.Errorf("cluster %s: Deployment %s/%s runs generation %q, want 3", c, ns, probeRelease, g)
		}
		want[k] = got[k]
	}
	if p := h.pending(t, ns); len(p) > 0 {
		t.Errorf("Helm releases left pending:\n%s", strings.Join(p, "\n"))
	}
	for _, c := range st.Clusters {
		if c.Report == nil {
			continue
		}
		for _, rel := range c.Report.Releases {
			t.Logf("cluster %s: release %s/%s: %s %s, revision %d→%d, recovered %q", c.Name, rel.Namespace, rel.Name, rel.Action, rel.Outcome, rel.FromRevision, rel.Revision, rel.Recovered)
			if rel.Name == probeRelease && c.Name == "blue" && rel.Recovered == "" {
				t.Errorf("cluster blue: the report of %s/%s does not say the pending-upgrade was recovered", rel.Namespace, rel.Name)
			}
		}
	}
}
