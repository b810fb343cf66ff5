package serve_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tandem-gitops/tandem/daemon"
)

// firstRunTimeout bounds a daemon's first run, which may install or upgrade
// every release of the examples manifest on both clusters.
const firstRunTimeout = 4 * time.Minute

// runTimeout bounds a later run, which changes one release.
const runTimeout = 2 * time.Minute

// webhookFlags make a daemon that only a webhook moves: it checks the remote
// once at start, then not for an hour.
func (h *harness) webhookFlags(r *remote) []string {
	return []string{"--repo", r.URL, "--ref", "main", "--interval", "1h", "--webhook-secret-file", h.secret}
}

// Push + signed GitHub webhook → both clusters updated, and /status and
// /metrics say so.
func TestServeWebhookPush(t *testing.T) {
	h := newHarness(t)
	r := h.exampleRemote(t, "webhook-push")
	first := r.Head
	d := h.startServe(t, "serve", h.webhookFlags(r)...)
	d.waitApplied(t, first, firstRunTimeout)
	if err := h.exampleAt(t, 3); err != nil {
		t.Fatalf("after the first run: %v", err)
	}
	revs := h.allStorage(t)

	setExampleReplicas(t, r, 4)
	pushed := r.Push(t, "example: 4 replicas")
	// The daemon polls hourly: the commit is on the remote, unseen.
	if st := d.status(t); st.CommitSeen != first {
		t.Fatalf("the daemon saw %s before any webhook; want %s (it polls hourly)", short(st.CommitSeen), short(first))
	}
	t0 := time.Now()
	if code := d.githubPush(t, "refs/heads/main", pushed); code != http.StatusAccepted {
		t.Fatalf("signed push webhook: %d, want %d", code, http.StatusAccepted)
	}
	st := d.waitApplied(t, pushed, runTimeout)
	t.Logf("push → applied on both clusters in %s (webhook)", time.Since(t0).Round(time.Millisecond))

	if err := h.exampleAt(t, 4); err != nil {
		t.Error(err)
	}
	want := maps.Clone(revs)
	for _, c := range []string{"blue", "green"} {
		k := c + " example/example"
		s := want[k]
		s.Revision++
		want[k] = s
	}
	if diff := cmp.Diff(want, h.allStorage(t)); diff != "" {
		t.Errorf("Helm storage: only example upgraded on both clusters (-want +got):\n%s", diff)
	}
	if st.LastRun == nil || st.LastRun.Commit != pushed || st.LastRun.Trigger != "webhook/github" || st.LastRun.Error != "" {
		t.Errorf("/status lastRun = %+v, want commit %s triggered by webhook/github without error", st.LastRun, short(pushed))
	}
	if st.CommitSeen != pushed {
		t.Errorf("/status commitSeen = %s, want %s", short(st.CommitSeen), short(pushed))
	}
	for _, c := range st.Clusters {
		if c.Report == nil || c.Report.Commit != pushed || c.LastError != "" {
			t.Errorf("/status cluster %s: report %v commit %q, last error %q; want the report of %s", c.Name, c.Report != nil, reportCommit(c), c.LastError, short(pushed))
		}
	}

	t.Run("metrics", func(t *testing.T) {
		checkMetrics(t, d.metrics(t), pushed, 2)
	})
}

func reportCommit(c daemon.ClusterState) string {
	if c.Report == nil {
		return ""
	}
	return c.Report.Commit
}

// Each bad webhook class is answered with its documented code and nothing
// is reconciled, although a new commit waits on the remote; a good webhook
// afterwards applies it.
func TestServeWebhookRefused(t *testing.T) {
	h := newHarness(t)
	r := h.exampleRemote(t, "webhook-refused")
	d := h.startServe(t, "serve", h.webhookFlags(r)...)
	d.waitApplied(t, r.Head, firstRunTimeout)

	setExampleReplicas(t, r, 5)
	other := r.PushBranch(t, "feature", "example: 5 replicas, on a branch")
	waiting := r.Push(t, "example: 5 replicas")

	st0 := d.status(t)
	m0 := d.metrics(t)
	git0 := h.git.Requests()

	push := pushBody("refs/heads/main", waiting)
	sha1Header := githubHeader("", push)
	m := hmac.New(sha1.New, []byte(webhookSecret))
	m.Write(push)
	sha1Header.Set("X-Hub-Signature", "sha1="+hex.EncodeToString(m.Sum(nil)))
	big := bytes.Repeat([]byte(" "), 1<<20+1)
	copy(big, push) // a valid push, padded past 1 MiB (JSON allows trailing space)
	otherPush := pushBody("refs/heads/feature", other)

	for _, tc := range []struct {
		name, method, path string
		header             http.Header
		body               []byte
		want               int
	}{
		{"bad signature", "POST", "/hooks/github", githubHeader("not-the-secret", push), push, http.StatusUnauthorized},
		{"SHA-1 signature only", "POST", "/hooks/github", sha1Header, push, http.StatusUnauthorized},
		{"no signature", "POST", "/hooks/github", githubHeader("", push), push, http.StatusUnauthorized},
		{"body over 1 MiB", "POST", "/hooks/github", githubHeader(webhookSecret, big), big, http.StatusRequestEntityTooLarge},
		{"GET", "GET", "/hooks/github", githubHeader(webhookSecret, push), push, http.StatusMethodNotAllowed},
		{"push to another branch", "POST", "/hooks/github", githubHeader(webhookSecret, otherPush), otherPush, http.StatusOK},
		{"unknown path", "POST", "/hooks/bitbucket", githubHeader(webhookSecret, push), push, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, err := d.request(tc.method, tc.path, tc.header, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.want {
				t.Errorf("%s %s: %d %q, want %d", tc.method, tc.path, code, bytes.TrimSpace(body), tc.want)
			}
		})
	}

	// A hint starts a check at once (no queue, no timer): give it time to
	// show, had one got through.
	time.Sleep(2 * time.Second)
	st1 := d.status(t)
	m1 := d.metrics(t)
	if diff := cmp.Diff(st0, st1); diff != "" {
		t.Errorf("/status changed after refused webhooks (-before +after):\n%s", diff)
	}
	for _, name := range []string{"tandem_reconcile_total", "tandem_git_poll_total", "tandem_commits_rejected_total"} {
		if before, after := m0.sum(name, nil), m1.sum(name, nil); before != after {
			t.Errorf("%s moved from %v to %v after refused webhooks", name, before, after)
		}
	}
	if n := h.git.Requests() - git0; n != 0 {
		t.Errorf("the daemon made %d git requests after refused webhooks, want 0", n)
	}
	if err := h.exampleAt(t, 3); err != nil {
		t.Errorf("clusters changed after refused webhooks: %v", err)
	}
	wantCodes := map[string]float64{"github 401": 3, "github 413": 1, "github 405": 1, "github 200": 1, "unknown 404": 1}
	gotCodes := map[string]float64{}
	for _, s := range m1.series("tandem_webhook_requests_total") {
		gotCodes[s.Labels["provider"]+" "+s.Labels["code"]] += s.Value
	}
	if diff := cmp.Diff(wantCodes, gotCodes); diff != "" {
		t.Errorf("tandem_webhook_requests_total by provider and code (-want +got):\n%s", diff)
	}
	if t.Failed() {
		t.FailNow()
	}

	// The setup was live all along: a good webhook applies the waiting commit.
	if code := d.githubPush(t, "refs/heads/main", waiting); code != http.StatusAccepted {
		t.Fatalf("signed push webhook: %d, want %d", code, http.StatusAccepted)
	}
	d.waitApplied(t, waiting, runTimeout)
	if err := h.exampleAt(t, 5); err != nil {
		t.Error(err)
	}
}

// checkMetrics checks a scrape of a daemon that has applied the examples
// manifest in wantRuns runs, the last of commit.
func checkMetrics(t *testing.T, m metricFamilies, commit string, wantRuns float64) {
	t.Helper()
	for _, c := range []string{"blue", "green"} {
		if got := m.sum("tandem_reconcile_total", map[string]string{"cluster": c, "result": "success"}); got != wantRuns {
			t.Errorf("tandem_reconcile_total{cluster=%q,result=\"success\"} = %v, want %v", c, got, wantRuns)
		}
		if got := m.sum("tandem_reconcile_total", map[string]string{"cluster": c, "result": "failure"}); got != 0 {
			t.Errorf("tandem_reconcile_total{cluster=%q,result=\"failure\"} = %v, want 0", c, got)
		}
		var commits []string
		for _, s := range m.series("tandem_applied_commit_info") {
			if s.Labels["cluster"] == c && s.Value == 1 {
				commits = append(commits, s.Labels["commit"])
			}
		}
		if diff := cmp.Diff([]string{commit}, commits); diff != "" {
			t.Errorf("tandem_applied_commit_info{cluster=%q} commits (-want +got):\n%s", c, diff)
		}
	}

	roles := map[string]string{}
	for _, s := range m.series("tandem_cluster_info") {
		roles[s.Labels["cluster"]] = s.Labels["role"]
	}
	if diff := cmp.Diff(map[string]string{"blue": "active", "green": "standby"}, roles); diff != "" {
		t.Errorf("tandem_cluster_info roles (-want +got):\n%s", diff)
	}

	// tandem_release_info: one series per release and cluster, with every
	// label, as Helm records the release.
	labels := []string{"cluster", "namespace", "release", "chart", "version", "revision", "status", "role"}
	got := map[string]map[string]string{}
	for _, s := range m.series("tandem_release_info") {
		for _, l := range labels {
			if _, ok := s.Labels[l]; !ok {
				t.Errorf("tandem_release_info series %v lacks label %q", s.Labels, l)
			}
		}
		got[s.Labels["cluster"]+" "+s.Labels["namespace"]+"/"+s.Labels["release"]] = s.Labels
	}
	wantReleases := map[string][]string{
		"blue":  {"example/example", "platform/platform", "shop/cache", "shop/orders-worker", "shop/storefront"},
		"green": {"example/example", "platform/platform"},
	}
	var wantKeys, gotKeys []string
	for c, rels := range wantReleases {
		for _, r := range rels {
			wantKeys = append(wantKeys, c+" "+r)
		}
	}
	for k := range got {
		gotKeys = append(gotKeys, k)
	}
	if diff := cmp.Diff(wantKeys, gotKeys, sortStrings); diff != "" {
		t.Errorf("tandem_release_info series (-want +got):\n%s", diff)
	}
	for k, l := range got {
		role := map[string]string{"blue": "active", "green": "standby"}[l["cluster"]]
		if l["role"] != role || l["status"] != "deployed" || l["chart"] == "" || l["version"] == "" || l["revision"] == "" {
			t.Errorf("tandem_release_info %s: %v; want role %s, status deployed, chart, version and revision set", k, l, role)
		}
	}
	if l := got["green example/example"]; l != nil && (l["chart"] != "example" || l["version"] != "0.1.0") {
		t.Errorf("tandem_release_info green example/example: chart %q version %q, want example 0.1.0", l["chart"], l["version"])
	}

	for _, name := range []string{"tandem_git_poll_total", "tandem_leader", "tandem_reconcile_duration_seconds", "tandem_git_fetch_duration_seconds",
		"tandem_release_drifted_objects", "process_resident_memory_bytes"} {
		if _, ok := m[name]; !ok {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if got := m.sum("tandem_git_poll_total", map[string]string{"result": "new"}); got < 1 {
		t.Errorf("tandem_git_poll_total{result=\"new\"} = %v, want at least 1", got)
	}
	// The only replica reconciles, so it counts as the leader: an alert on
	// sum(tandem_leader) == 0 means nobody reconciles, with or without HA.
	if got := m.sum("tandem_leader", nil); got != 1 {
		t.Errorf("tandem_leader = %v without --leader-elect, want 1 (the only replica reconciles)", got)
	}
}

var sortStrings = cmpopts.SortSlices(func(a, b string) bool { return a < b })
