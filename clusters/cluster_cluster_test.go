package clusters

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sync/errgroup"
)

func TestRequestsCounted(t *testing.T) {
	ctx, c, _ := connect(t)
	if n := c.Requests(); n != 1 {
		t.Errorf("Requests() after Connect = %d, want 1 (GET /version)", n)
	}
	before := c.Requests()
	if _, err := c.History(ctx, "default", "no-such-release"); err != nil {
		t.Fatal(err)
	}
	if n := c.Requests() - before; n != 1 {
		t.Errorf("History() made %d requests, want 1", n)
	}
}

// TestDiscoveryFetchedOncePerCluster installs several releases, some at
// once, through one Cluster and checks that discovery and OpenAPI documents
// are fetched once in all, not once per install.
func TestDiscoveryFetchedOncePerCluster(t *testing.T) {
	var paths pathCounter
	ctx, c, _ := connect(t, func(o *Options) { o.WrapTransport = paths.wrap })
	ns := testNamespace(t)
	ch := loadChart(t, "web")

	install := func(name string) error {
		_, err := c.Install(ctx, ReleaseRequest{Name: name, Namespace: ns, Chart: ch, Values: map[string]any{"replicas": 0}})
		return err
	}
	start := c.Requests()
	if err := install("first"); err != nil {
		t.Fatal(err)
	}
	firstCost := c.Requests() - start
	start = c.Requests()
	if err := install("second"); err != nil {
		t.Fatal(err)
	}
	warmCost := c.Requests() - start
	var g errgroup.Group
	const concurrent = 4
	for i := range concurrent {
		g.Go(func() error { return install(fmt.Sprintf("web-%d", i)) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("requests: first install %d, warm install %d, total %d", firstCost, warmCost, c.Requests())

	got := paths.snapshot()
	t.Logf("requests by path: %v", got)
	for path, n := range got {
		discovery := path == "/api" || path == "/apis" || strings.HasPrefix(path, "/openapi/")
		if discovery && n > 1 {
			t.Errorf("%s fetched %d times across %d installs, want once", path, n, 2+concurrent)
		}
	}
	if got["/api"] != 1 || got["/apis"] != 1 {
		t.Errorf("discovery /api fetched %d, /apis %d times; want 1 each (is the test still observing discovery?)", got["/api"], got["/apis"])
	}
	if warmCost >= firstCost {
		t.Errorf("warm install cost %d requests, first %d: caching saved nothing", warmCost, firstCost)
	}
}

func TestConnectUnreachable(t *testing.T) {
	ctx, c, e := connect(t)
	nsManifest := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n"
	if _, err := c.WaitHealthy(ctx, nsManifest, WaitOptions{Timeout: time.Minute}); err != nil {
		t.Fatal(err) // also fills the discovery cache, so the wait below gets as far as reading
	}
	if err := e.StopAPIServer(testCluster); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := e.StartAPIServer(rctx, testCluster); err != nil {
			t.Errorf("restart apiserver: %v", err)
		}
	})
	opts := DefaultOptions()
	opts.Kubeconfig = e.Kubeconfig()
	opts.Context = testCluster
	_, err := Connect(ctx, testCluster, opts)
	if err == nil || !strings.HasPrefix(err.Error(), `cluster "blue": unreachable`) {
		t.Errorf("Connect(stopped apiserver) = %v, want an error starting with the cluster's name", err)
	}
	if _, err := c.ReadState(ctx); err == nil || !strings.Contains(err.Error(), `cluster "blue"`) {
		t.Errorf("ReadState(stopped apiserver) = %v, want an error naming the cluster", err)
	}
	// The timeout only has to outlast one failed read; on a loaded machine a
	// refused connection can take seconds to surface through client-go.
	_, err = c.WaitHealthy(ctx, nsManifest, WaitOptions{Timeout: 20 * time.Second, Interval: time.Second})
	var he *HealthError
	if !errors.As(err, &he) || he.ReadErr == nil || len(he.Objects) != 1 || he.Objects[0].Status != "Unknown" {
		t.Errorf("WaitHealthy(stopped apiserver) = %v, want a *HealthError with the read error and the object Unknown", err)
	}
}

func TestStateRoundTrip(t *testing.T) {
	ctx, c, _ := connect(t)
	got, err := c.ReadState(ctx)
	if err != nil || got != nil {
		t.Fatalf("ReadState() before any write = %+v, %v; want nil, nil", got, err)
	}
	states := []State{
		{
			Cluster: "blue", Role: "active", Commit: "c0ffee", Ref: "main",
			AppliedAt: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
			Releases: []ReleaseState{
				{Name: "web", Namespace: "shop", Digest: "abc", Revision: 3, Outcome: "ok", Duration: 1200 * time.Millisecond},
				{Name: "api", Namespace: "shop", Revision: 1, Outcome: "failed", Error: `release "shop/api": boom`},
			},
			LastError: "one release failed",
		},
		{Cluster: "blue", Role: "standby", Commit: "beef", AppliedAt: time.Date(2026, 11, 23, 13, 0, 0, 0, time.UTC), Releases: []ReleaseState{}},
	}
	for i, want := range states {
		if err := c.WriteState(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := c.ReadState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&want, got); diff != "" {
			t.Errorf("state %d round trip (-want +got):\n%s", i, diff)
		}
	}
}
