package daemon

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// The live metrics the chart's PrometheusRule alerts on are exported
// under the names the rules use.
func TestLiveMetricsForTheChartsAlerts(t *testing.T) {
	m := NewMetrics()
	m.observeLive([]reconciler.LiveStatus{
		{Cluster: "blue", DNSWeights: map[string]int{"shop.example": 100}},
		{Cluster: "green", DNSWeights: map[string]int{"shop.example": 0}, HeldScaledUp: 2,
			Switchover: &clusters.SwitchoverState{From: []string{"blue"}, To: []string{"green"}, Phase: 1}},
		{Cluster: "red", Error: "unreachable"},
	})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`tandem_dns_weight{cluster="blue",hostname="shop.example"} 100`,
		`tandem_dns_weight{cluster="green",hostname="shop.example"} 0`,
		`tandem_switchover_in_progress{cluster="blue"} 0`,
		`tandem_switchover_in_progress{cluster="green"} 1`,
		`tandem_standby_workloads_scaled_up{cluster="green"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(body), `cluster="red"`) {
		t.Error("an unread cluster got live metrics")
	}
}

// A replica that stops leading exports none of what its runs recorded of
// the clusters (review of issue 12, finding 5): a switchover in progress
// kept from before a leader change paged TandemSwitchoverStuck, and kept
// TandemStandbyScaledUp and TandemActiveWeightZero silent. A run that ends
// after the lead is lost records nothing.
func TestFollowerDropsClusterGauges(t *testing.T) {
	m := NewMetrics()
	m.leader(true)
	man := &manifest.Manifest{Clusters: []manifest.Cluster{{Name: "blue", Role: manifest.RoleActive}, {Name: "green", Role: manifest.RoleStandby}}}
	rep := &reconciler.Report{Commit: "abc", Clusters: []reconciler.ClusterReport{{Name: "green",
		Releases: []reconciler.ReleaseReport{{Name: "web", Namespace: "shop", Drifted: []string{"Deployment shop/web"}}}}}}
	statuses := []reconciler.ClusterStatus{{Name: "green", Role: "standby", Releases: []reconciler.ReleaseStatus{{Name: "web", Namespace: "shop", Chart: "web", Revision: 2, Status: "deployed"}}}}
	live := []reconciler.LiveStatus{{Cluster: "green", DNSWeights: map[string]int{"shop.example": 0}, HeldScaledUp: 1,
		Switchover: &clusters.SwitchoverState{From: []string{"blue"}, To: []string{"green"}, Phase: 1}}}
	m.observe(man, rep, statuses)
	m.observeLive(live)
	perCluster := []string{"tandem_switchover_in_progress{", "tandem_dns_weight{", "tandem_standby_workloads_scaled_up{",
		"tandem_cluster_info{", "tandem_release_drifted_objects{", "tandem_release_info{", "tandem_applied_commit_info{"}
	body := scrape(t, m)
	for _, name := range perCluster {
		if !strings.Contains(body, name) {
			t.Fatalf("leader: /metrics lacks %s…", name)
		}
	}
	m.leader(false)
	m.observe(man, rep, statuses) // a run that ends after the lead was lost
	m.observeLive(live)
	body = scrape(t, m)
	for _, name := range perCluster {
		if strings.Contains(body, name) {
			t.Errorf("follower: /metrics still has %s…", name)
		}
	}
	if !strings.Contains(body, "tandem_leader 0") {
		t.Error("follower: tandem_leader is not 0")
	}
	m.leader(true)
	m.observeLive(live)
	if body = scrape(t, m); !strings.Contains(body, `tandem_switchover_in_progress{cluster="green"} 1`) {
		t.Error("leader again: live gauges not recorded")
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}
