package render

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func testdataRequest(t *testing.T, chart string) Request {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "charts", chart))
	if err != nil {
		t.Fatal(err)
	}
	return Request{Cluster: "blue", Release: "r", Namespace: "ns", Chart: ChartSource{Dir: dir},
		Overlay: Overlay{Release: "r", Cluster: "blue", Role: RoleActive, DNSPrefix: prefix, ActiveWeight: 100}}
}

// TestRenderChartRequiringRecentKubernetes: podinfo-like charts declare
// kubeVersion ">=1.23.0-0"; with nothing known of the cluster they render
// against the Kubernetes tandem is built against, not Helm's v1.20.0.
func TestRenderChartRequiringRecentKubernetes(t *testing.T) {
	res, err := New(DefaultOptions()).Render(context.Background(), testdataRequest(t, "kubeversion"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Objects) != 1 || res.Objects[0].Kind != "Deployment" {
		t.Fatalf("want one Deployment, got %+v", res.Objects)
	}
}

// TestRenderCronJobAPIVersionBySemverCompare: charts that pick batch/v1 or
// batch/v1beta1 by comparing .Capabilities.KubeVersion plan batch/v1.
func TestRenderCronJobAPIVersionBySemverCompare(t *testing.T) {
	res, err := New(DefaultOptions()).Render(context.Background(), testdataRequest(t, "cronjob"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Objects[0].APIVersion; got != "batch/v1" {
		t.Errorf("CronJob apiVersion %q, want batch/v1:\n%s", got, res.Manifest)
	}
	if strings.Contains(res.Manifest, "v1.20") {
		t.Errorf("rendered against Helm's default Kubernetes v1.20:\n%s", res.Manifest)
	}
}

// TestDefaultKubeVersionFollowsClientGo keeps DefaultKubeVersion at the
// Kubernetes minor of the client-go in go.mod (v0.<minor>.x is 1.<minor>).
func TestDefaultKubeVersionFollowsClientGo(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*k8s\.io/client-go v0\.(\d+)\.\d+`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod requires no k8s.io/client-go v0.x.y")
	}
	if want := "v1." + string(m[1]) + ".0"; DefaultKubeVersion != want {
		t.Errorf("DefaultKubeVersion is %s; go.mod's client-go is Kubernetes %s", DefaultKubeVersion, want)
	}
}

func TestRenderWithCapabilities(t *testing.T) {
	discovered := []string{"v1", "v1/ConfigMap", "apps/v1", "apps/v1/Deployment", "monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"}
	tests := []struct {
		name    string
		chart   string
		caps    Capabilities
		want    []string // substrings of the manifest
		wantErr string
	}{
		{name: "nothing known: tandem's Kubernetes", chart: "cronjob",
			want: []string{"apiVersion: batch/v1\n", "kube-version: " + DefaultKubeVersion + "\n", `kube-minor: "37"`}},
		{name: "an old cluster gets batch/v1beta1", chart: "cronjob", caps: Capabilities{KubeVersion: "v1.20.0"},
			want: []string{"apiVersion: batch/v1beta1\n", "kube-version: v1.20.0\n"}},
		{name: "major.minor as in helm template --kube-version", chart: "cronjob", caps: Capabilities{KubeVersion: "1.31"},
			want: []string{"apiVersion: batch/v1\n", "kube-version: v1.31.0\n", `kube-minor: "31"`}},
		{name: "a server's git version is kept as Helm's install sees it", chart: "cronjob", caps: Capabilities{KubeVersion: "v1.29.3-eks-adc7111"},
			want: []string{"apiVersion: batch/v1\n", "kube-version: v1.29.3-eks-adc7111\n", `kube-minor: "29"`}},
		{name: "kubeVersion constraint met by a vendor's git version", chart: "kubeversion", caps: Capabilities{KubeVersion: "v1.29.3-eks-adc7111"},
			want: []string{"kind: Deployment"}},
		{name: "kubeVersion constraint not met", chart: "kubeversion", caps: Capabilities{KubeVersion: "1.22"},
			wantErr: "chart requires kubeVersion: >=1.23.0-0 which is incompatible with Kubernetes v1.22.0"},
		{name: "not a version", chart: "cronjob", caps: Capabilities{KubeVersion: "one.two"},
			wantErr: `kube version "one.two"`},
		{name: "default API versions", chart: "apiversions",
			want: []string{`servicemonitor: "false"`, `monitoring: "false"`, `apps-v1: "true"`, `policy-v1beta1: "true"`}},
		{name: "declared API versions are added to the defaults", chart: "apiversions",
			caps: Capabilities{APIVersions: []string{"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"}},
			want: []string{`servicemonitor: "true"`, `monitoring: "true"`, `apps-v1: "true"`, `policy-v1beta1: "true"`}},
		{name: "discovered API versions are the whole set", chart: "apiversions",
			caps: Capabilities{KubeVersion: "v1.37.2", APIVersions: discovered, Discovered: true},
			want: []string{`servicemonitor: "true"`, `monitoring: "true"`, `apps-v1: "true"`, `policy-v1beta1: "false"`}},
	}
	r := New(DefaultOptions())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := testdataRequest(t, tt.chart)
			req.Capabilities = tt.caps
			res, err := r.Render(context.Background(), req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), `release "r"`) {
					t.Fatalf("got error %v, want one naming the release and saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.Manifest, w) {
					t.Errorf("manifest lacks %q:\n%s", w, res.Manifest)
				}
			}
		})
	}
	if len(discovered) != 6 || discovered[0] != "v1" {
		t.Error("rendering changed the caller's API versions")
	}
}
