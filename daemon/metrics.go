package daemon

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// Metrics are the daemon's Prometheus metrics, on a registry of their own
// (no global registry): prefix tandem_, labels as Flux's gotk_ and Argo CD's
// argocd_ metrics have taught alert writers to expect. A nil *Metrics
// records nothing.
type Metrics struct {
	reg *prometheus.Registry

	// mu orders leader changes with the records of a run: a run that
	// ends after its replica lost the lead records nothing.
	mu sync.Mutex
	// follower is set while another replica leads: this one's live and
	// per-run gauges are empty, so the rules' max by (cluster) sees only
	// the leader's.
	follower bool

	reconcileDuration *prometheus.HistogramVec
	reconcileTotal    *prometheus.CounterVec
	releaseInfo       *prometheus.GaugeVec
	releaseDrifted    *prometheus.GaugeVec
	clusterInfo       *prometheus.GaugeVec
	appliedCommit     *prometheus.GaugeVec
	gitPoll           *prometheus.CounterVec
	gitFetch          prometheus.Histogram
	webhook           *prometheus.CounterVec
	leaderGauge       prometheus.Gauge
	commitsRejected   prometheus.Counter
	dnsWeight         *prometheus.GaugeVec
	switchover        *prometheus.GaugeVec
	standbyScaledUp   *prometheus.GaugeVec
}

// NewMetrics registers the metrics, with the Go and process collectors, on a
// new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		reconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tandem_reconcile_duration_seconds",
			Help:    "How long one cluster's part of a reconcile took.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}, []string{"cluster"}),
		reconcileTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_reconcile_total",
			Help: "Reconciles per cluster by result (success, failure).",
		}, []string{"cluster", "result"}),
		releaseInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_release_info",
			Help: "One series per tandem release on a cluster, as Helm records it; value 1.",
		}, []string{"cluster", "namespace", "release", "chart", "version", "revision", "status", "role"}),
		releaseDrifted: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_release_drifted_objects",
			Help: "Objects of a release whose live state differs from git (not corrected), at the last reconcile.",
		}, []string{"cluster", "namespace", "release"}),
		clusterInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_cluster_info",
			Help: "One series per cluster with its role in git (active, standby); value 1. Join on it for role-aware alerts.",
		}, []string{"cluster", "role"}),
		appliedCommit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_applied_commit_info",
			Help: "The commit last applied to a cluster without a failure; value 1.",
		}, []string{"cluster", "commit"}),
		gitPoll: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_git_poll_total",
			Help: "Checks of the followed ref by result (new, unchanged, error).",
		}, []string{"result"}),
		gitFetch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tandem_git_fetch_duration_seconds",
			Help:    "How long fetching and loading a commit took.",
			Buckets: prometheus.DefBuckets,
		}),
		webhook: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_webhook_requests_total",
			Help: "Webhook requests by provider and HTTP status code.",
		}, []string{"provider", "code"}),
		leaderGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tandem_leader",
			Help: "1 while this replica leads (reconciles), else 0.",
		}),
		commitsRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tandem_commits_rejected_total",
			Help: "Commits not applied because they did not load, validate or render.",
		}),
		dnsWeight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_dns_weight",
			Help: "Live ExternalDNS weight per hostname on a cluster (the lowest where its objects disagree), read after each run.",
		}, []string{"cluster", "hostname"}),
		switchover: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_switchover_in_progress",
			Help: "1 while the cluster's state record shows a switchover under way, else 0; read after each run.",
		}, []string{"cluster"}),
		standbyScaledUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_standby_workloads_scaled_up",
			Help: "Workloads tandem holds at zero on a Standby that have replicas above zero: those with its marker (tandem.dev/active-replicas), and on a Standby outside a switchover every workload of a scale-to-zero release, marker or not; read after each run.",
		}, []string{"cluster"}),
	}
	m.reg.MustRegister(m.reconcileDuration, m.reconcileTotal, m.releaseInfo, m.releaseDrifted, m.clusterInfo,
		m.appliedCommit, m.gitPoll, m.gitFetch, m.webhook, m.leaderGauge, m.commitsRejected,
		m.dnsWeight, m.switchover, m.standbyScaledUp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Webhook counts one webhook request (the webhook handler's Observe).
func (m *Metrics) Webhook(provider string, code int) {
	if m == nil {
		return
	}
	m.webhook.WithLabelValues(provider, strconv.Itoa(code)).Inc()
}

func (m *Metrics) poll(result string) {
	if m == nil {
		return
	}
	m.gitPoll.WithLabelValues(result).Inc()
}

func (m *Metrics) fetched(d time.Duration) {
	if m == nil {
		return
	}
	m.gitFetch.Observe(d.Seconds())
}

func (m *Metrics) rejected() {
	if m == nil {
		return
	}
	m.commitsRejected.Inc()
}

// leader records whether this replica leads. One that does not (any
// more) drops what its runs recorded of the clusters: a value kept from
// before a leader change (a switchover in progress, a DNS weight, a
// Standby scaled up) would page or silence alerts for as long as the
// process lives.
func (m *Metrics) leader(self bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.follower = !self
	if self {
		m.leaderGauge.Set(1)
		return
	}
	m.leaderGauge.Set(0)
	for _, g := range []*prometheus.GaugeVec{m.releaseInfo, m.releaseDrifted, m.clusterInfo, m.appliedCommit,
		m.dnsWeight, m.switchover, m.standbyScaledUp} {
		g.Reset()
	}
}

// observe records a run: its report, and the releases the clusters hold
// after it (statuses, which may be partial or nil).
func (m *Metrics) observe(man *manifest.Manifest, rep *reconciler.Report, statuses []reconciler.ClusterStatus) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.follower {
		return // lost the lead during the run: the new leader records it
	}
	m.clusterInfo.Reset()
	for _, c := range man.Clusters {
		m.clusterInfo.WithLabelValues(c.Name, string(c.Role)).Set(1)
	}
	if rep == nil {
		return
	}
	for _, c := range rep.Clusters {
		m.reconcileDuration.WithLabelValues(c.Name).Observe(time.Duration(c.Duration).Seconds())
		result := "success"
		if c.Failed() {
			result = "failure"
		} else {
			m.appliedCommit.DeletePartialMatch(prometheus.Labels{"cluster": c.Name})
			m.appliedCommit.WithLabelValues(c.Name, rep.Commit).Set(1)
		}
		m.reconcileTotal.WithLabelValues(c.Name, result).Inc()
		m.releaseDrifted.DeletePartialMatch(prometheus.Labels{"cluster": c.Name})
		for _, r := range c.Releases {
			drifted := len(r.Drifted) - len(r.Corrected)
			m.releaseDrifted.WithLabelValues(c.Name, r.Namespace, r.Name).Set(float64(max(drifted, 0)))
		}
	}
	for _, cs := range statuses {
		if cs.Error != "" {
			continue // unread: keep what was last known
		}
		m.releaseInfo.DeletePartialMatch(prometheus.Labels{"cluster": cs.Name})
		for _, r := range cs.Releases {
			m.releaseInfo.WithLabelValues(cs.Name, r.Namespace, r.Name, r.Chart, r.ChartVersion, strconv.Itoa(r.Revision), r.Status, cs.Role).Set(1)
		}
	}
}

// observeLive records what the clusters serve after a run; a cluster that
// could not be read keeps what was last known.
func (m *Metrics) observeLive(live []reconciler.LiveStatus) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.follower {
		return
	}
	for _, l := range live {
		if l.Error != "" {
			continue
		}
		m.dnsWeight.DeletePartialMatch(prometheus.Labels{"cluster": l.Cluster})
		for host, w := range l.DNSWeights {
			m.dnsWeight.WithLabelValues(l.Cluster, host).Set(float64(w))
		}
		v := 0.0
		if l.Switchover != nil {
			v = 1
		}
		m.switchover.WithLabelValues(l.Cluster).Set(v)
		m.standbyScaledUp.WithLabelValues(l.Cluster).Set(float64(l.HeldScaledUp))
	}
}
