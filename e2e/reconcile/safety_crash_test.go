package reconcile_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/reconciler"
)

// crashReleases is the size of the crash test's manifest.
const crashReleases = 20

// crashKills is how many runs in a row are killed.
const crashKills = 20

// crashNamespaces hold the crash test's releases, alternately.
var crashNamespaces = []string{"crash-a", "crash-b"}

// crashRelease is the crash test's i-th release (1-based).
func crashRelease(i int) releaseID {
	return releaseID{crashNamespaces[(i-1)%len(crashNamespaces)], fmt.Sprintf("c%02d", i)}
}

// crashManifest is 20 releases of the probe chart on both clusters, in three
// waves, some needing others (by bare name and by namespace/name), all
// reading values/common.yaml, whose generation each run changes.
func crashManifest() string {
	var b strings.Builder
	b.WriteString(idLine("e2e-crash") + twoClusters + "releases:\n")
	needs := map[int][]string{
		8:  {"c01"},
		12: {"c02", "crash-a/c03"},
		15: {"c08"},
		20: {"c14", "crash-a/c01"},
	}
	for i := 1; i <= crashReleases; i++ {
		k := crashRelease(i)
		fmt.Fprintf(&b, "  - name: %s\n    namespace: %s\n    chart: ./charts/probe\n    values: [values/common.yaml]\n    wave: %d\n    timeout: 2m\n",
			k.Name, k.Namespace, (i-1)*3/crashReleases)
		if n := needs[i]; len(n) > 0 {
			fmt.Fprintf(&b, "    needs: [%s]\n", strings.Join(n, ", "))
		}
	}
	return b.String()
}

// TestCrashKill9 is issue 8's crash proof: a 20-release manifest on both
// clusters is reconciled and the CLI killed with SIGKILL at a random moment,
// 20 runs in a row, each with work to do; then one normal run must leave
// every release deployed and healthy, nothing pending, and no release with
// more revisions than the attempts that reached it.
//
// The revision bound: Helm writes a new revision for an install, an upgrade
// or a rollback; marking a stuck revision failed (recovery) rewrites that
// revision in place. A run emits a release's "started" progress line before
// its install or upgrade (and before recovering it), and stderr is
// unbuffered, so even a killed run's stderr tells whether it could have
// written a revision of that release. Hence, per cluster and release:
//
//	latest revision <= runs whose stderr shows it started + rollbacks reported
//
// and as the probe chart is always healthy here, rollbacks must be 0 (a
// rollback only follows a failed health wait).
func TestCrashKill9(t *testing.T) {
	h := newSafetyHarness(t)
	h.deleteNamespacesOnCleanup(t, crashNamespaces...)
	repo := newProbeRepo(t, crashManifest())
	setGeneration := func(g int) {
		repo.Write(t, "values/common.yaml", "generation: \""+strconv.Itoa(g)+"\"\n")
		repo.Commit(t, "generation "+strconv.Itoa(g))
	}
	killFlags := []string{"--lock-duration", "3s", "--lock-timeout", "2m"}

	// attempts counts, by "cluster release", the runs that started a release.
	attempts := map[string]int{}
	rollbacks := map[string]int{}
	var failedLines []string
	tally := func(stderr string) {
		for _, l := range progressLines(stderr) {
			key := l.Cluster + " " + l.Release
			switch {
			case l.Fields[len(l.Fields)-1] == "started":
				attempts[key]++
			case len(l.Fields) > 4 && l.Fields[4] == "FAILED":
				failedLines = append(failedLines, l.Text)
				if strings.Contains(l.Text, "rolled back to revision") {
					rollbacks[key]++
				}
			}
		}
	}

	setGeneration(0)
	t0 := time.Now()
	res := h.reconcile(t, repo.Dir, killFlags...)
	if res.Code != 0 {
		t.Fatalf("install: exit %d, want 0", res.Code)
	}
	install := time.Since(t0)
	tally(res.Stderr)

	// A normal run with a change to every release sets the range of the
	// random delays.
	setGeneration(1)
	t0 = time.Now()
	res = h.reconcile(t, repo.Dir, killFlags...)
	if res.Code != 0 {
		t.Fatalf("normal run: exit %d, want 0", res.Code)
	}
	normal := time.Since(t0)
	tally(res.Stderr)
	t.Logf("install took %s, a normal run with 40 upgrades %s", install.Round(time.Millisecond), normal.Round(time.Millisecond))

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TANDEM_E2E_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	// A killed run's successor first waits for the dead run's lease (3s,
	// judged from when it saw the Lease stop changing), then does a normal
	// run's work: the delays span both, so some kills land near the end.
	killRange := normal + 3*time.Second
	t.Logf("random delays in [0, %s) from seed %d (TANDEM_E2E_CRASH_SEED to repeat)", killRange.Round(time.Millisecond), seed)

	type revKey struct {
		cluster string
		id      releaseID
		rev     int
	}
	pendingSeen := map[revKey]bool{} // pending revisions found after a kill
	// resolved holds, for those no longer pending after a later run, the
	// status they were first seen with: failed (tandem's recovery marked it),
	// or superseded (marked failed, then superseded by the recovering
	// upgrade itself, which Helm does when no deployed revision is left: a
	// kill between Helm's two final writes leaves the old revision
	// superseded and the new one pending).
	resolved := map[revKey]string{}
	// pendingNow are the releases pending after the latest run.
	var pendingNow map[string]bool
	started, killed, finished := 0, 0, 0
	checkResolved := func() {
		for k := range pendingSeen {
			if _, ok := resolved[k]; ok {
				continue
			}
			if st := h.revisionStatus(t, k.cluster, k.id, k.rev); !strings.HasPrefix(st, "pending-") {
				resolved[k] = st
			}
		}
	}
	for i := range crashKills {
		setGeneration(i + 2)
		delay := time.Duration(rng.Int64N(int64(killRange)))
		p := h.start(t, repo.Dir, killFlags...)
		started++
		select {
		case <-p.done:
		case <-time.After(delay):
		}
		wasKilled := killNow(t, p)
		if wasKilled {
			killed++
		} else {
			finished++
			if res := p.wait(t); res.Code != 0 {
				t.Errorf("run %d ended by itself with exit %d", i+1, res.Code)
			}
		}
		tally(p.stderr.String())
		checkResolved()
		pendingNow = map[string]bool{}
		for _, c := range []string{"blue", "green"} {
			for k, s := range h.storageByKey(t, c, crashNamespaces...) {
				if strings.HasPrefix(s.Status, "pending-") {
					pendingSeen[revKey{c, k, s.Revision}] = true
					pendingNow[fmt.Sprintf("%s %s", c, k)] = true
				}
			}
		}
		t.Logf("run %2d: delay %5s, killed %-5v, pending after it: %v", i+1, delay.Round(time.Millisecond), wasKilled, slices.Sorted(maps.Keys(pendingNow)))
	}

	// One normal run, on the manifest the last killed run was applying.
	res = h.reconcile(t, repo.Dir, "--lock-timeout", "2m")
	tally(res.Stderr)
	checkResolved()
	if res.Code != 0 {
		t.Errorf("final run: exit %d, want 0", res.Code)
	}
	rep := decodeReport(t, res)
	finalRecovered := map[string]bool{}
	for _, c := range rep.Clusters {
		for _, r := range c.Releases {
			if r.Recovered != "" {
				finalRecovered[fmt.Sprintf("%s %s/%s", c.Name, r.Namespace, r.Name)] = true
			}
			if r.Outcome != reconciler.OutcomeOK {
				t.Errorf("final run: cluster %s release %s/%s: %s %s (%s)", c.Name, r.Namespace, r.Name, r.Action, r.Outcome, r.Error)
			}
		}
	}

	if diff := cmp.Diff(pendingNow, finalRecovered); diff != "" {
		t.Errorf("final run: releases it recovered differ from those pending before it (-pending +recovered):\n%s", diff)
	}

	lastGeneration := strconv.Itoa(crashKills + 1)
	minRev, maxRev := 0, 0
	for _, c := range []string{"blue", "green"} {
		got := h.storageByKey(t, c, crashNamespaces...)
		listed := h.helmList(t, c, crashNamespaces...)
		if diff := cmp.Diff(got, listed); diff != "" {
			t.Errorf("cluster %s: helm ls -a differs from Helm storage (-storage +helm ls):\n%s", c, diff)
		}
		for i := 1; i <= crashReleases; i++ {
			k := crashRelease(i)
			s, ok := got[k]
			if !ok {
				t.Errorf("cluster %s: release %s missing", c, k)
				continue
			}
			if s.Status != "deployed" {
				t.Errorf("cluster %s: release %s is %s at revision %d, want deployed", c, k, s.Status, s.Revision)
			}
			if minRev == 0 || s.Revision < minRev {
				minRev = s.Revision
			}
			maxRev = max(maxRev, s.Revision)
			key := c + " " + k.Name
			if bound := attempts[key] + rollbacks[key]; s.Revision > bound {
				t.Errorf("cluster %s: release %s at revision %d, but only %d runs started it and %d rolled it back", c, k, s.Revision, attempts[key], rollbacks[key])
			}
			d := h.deployment(t, c, k.Namespace, k.Name)
			want := replicas{1, 1, true}
			if c == "green" {
				want = replicas{0, 0, true} // scale-to-zero on Standby
			}
			if diff := cmp.Diff(want, deploymentReplicas(d)); diff != "" {
				t.Errorf("cluster %s Deployment %s replicas (-want +got):\n%s", c, k, diff)
			}
			if g := d.Spec.Template.Annotations["e2e.tandem.dev/generation"]; g != lastGeneration {
				t.Errorf("cluster %s Deployment %s runs generation %q, want %s", c, k, g, lastGeneration)
			}
		}
	}
	totalRollbacks := 0
	for _, n := range rollbacks {
		totalRollbacks += n
	}
	if totalRollbacks > 0 || len(failedLines) > 0 {
		t.Errorf("%d rollbacks; failed steps over all runs (the chart is always healthy, so none was expected):\n%s", totalRollbacks, strings.Join(failedLines, "\n"))
	}
	t.Logf("crash test: %d runs started and killed at random (%d killed, %d finished before their kill), plus the install, one measured and one final run",
		started, killed, finished)
	var fates []string
	byFate := map[string]int{}
	for k := range pendingSeen {
		fate, ok := resolved[k]
		if !ok {
			fate = "still " + h.revisionStatus(t, k.cluster, k.id, k.rev)
		}
		byFate[fate]++
		fates = append(fates, fmt.Sprintf("%s %s@%d: %s", k.cluster, k.id, k.rev, fate))
	}
	slices.Sort(fates)
	t.Logf("crash test: %d pending-* revisions left by kills; by what a later run left of them: %v; the final run found and recovered %d; %d pending at the end:\n%s",
		len(pendingSeen), byFate, len(finalRecovered), countPending(h, t), strings.Join(fates, "\n"))
	t.Logf("crash test: latest revision per release min %d, max %d (bound: runs that started it, at most %d); %d rollbacks",
		minRev, maxRev, started+3, totalRollbacks)
}

// countPending counts pending-* releases of the crash test on both clusters.
func countPending(h *harness, t *testing.T) int {
	t.Helper()
	n := 0
	for _, c := range []string{"blue", "green"} {
		for k, s := range h.storageByKey(t, c, crashNamespaces...) {
			if strings.HasPrefix(s.Status, "pending-") {
				t.Errorf("cluster %s: release %s is %s at revision %d", c, k, s.Status, s.Revision)
				n++
			}
		}
	}
	return n
}

// helmList is what the stock helm CLI lists (helm ls -a) in some namespaces
// of a cluster, in storageByKey's form.
func (h *harness) helmList(t *testing.T, cluster string, namespaces ...string) map[releaseID]stored {
	t.Helper()
	out := map[releaseID]stored{}
	for _, ns := range namespaces {
		var listed []helmListed
		raw := h.helm(t, cluster, "ls", "-a", "-n", ns, "-o", "json")
		if err := json.Unmarshal([]byte(raw), &listed); err != nil {
			t.Fatalf("helm ls -n %s: %v\n%s", ns, err, raw)
		}
		for _, l := range listed {
			rev, _ := strconv.Atoi(l.Revision)
			out[releaseID{l.Namespace, l.Name}] = stored{Namespace: l.Namespace, Revision: rev, Status: l.Status}
		}
	}
	return out
}
