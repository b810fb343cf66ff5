package daemon

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/clusters"
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
