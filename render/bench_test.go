package render

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sync/errgroup"
)

// BenchmarkRender measures a whole reconcile's render: a fresh Renderer per
// iteration (so each chart is loaded once per iteration, as in one reconcile)
// rendering every release for two clusters through RenderAll.
//
// Each manifest runs twice: with Concurrency=1, the baseline of rendering one
// release after another, then with the default concurrency (GOMAXPROCS); the
// second reports its speed-up over the first as the metric "speedup-x", so
// the ratio is measured in one run on one machine. The speed-up needs idle
// cores: on a machine busy with other work it shrinks towards 1.
//
//	go test -run '^$' -bench BenchmarkRender -benchmem ./render/
func BenchmarkRender(b *testing.B) {
	manifests := []struct {
		name string
		reqs func(testing.TB) []Request
	}{
		{"examples", exampleRequests},
		{"synthetic-100", func(tb testing.TB) []Request { return syntheticRequests(tb, 100) }},
	}
	for _, m := range manifests {
		b.Run(m.name, func(b *testing.B) {
			reqs := m.reqs(b)
			// ns per op with Concurrency=1, summed over the runs so far (-count
			// runs each sub-benchmark several times in a row): the speed-up is
			// against their mean.
			var baselineSum float64
			var baselineRuns int
			for _, conc := range []int{1, 0} {
				name := "concurrency=1"
				if conc == 0 {
					name = fmt.Sprintf("concurrency=%d", runtime.GOMAXPROCS(0))
				}
				b.Run(name, func(b *testing.B) {
					opts := DefaultOptions()
					opts.Concurrency = conc
					ctx := context.Background()
					b.ReportAllocs()
					for b.Loop() {
						res, err := New(opts).RenderAll(ctx, reqs)
						if err != nil {
							b.Fatal(err)
						}
						if len(res) != len(reqs) {
							b.Fatalf("%d results for %d requests", len(res), len(reqs))
						}
					}
					perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					b.ReportMetric(float64(len(reqs)), "renders/op")
					b.ReportMetric(perOp/1e6/float64(len(reqs)), "ms/render")
					if conc == 1 {
						baselineSum += perOp
						baselineRuns++
					} else if baselineRuns > 0 {
						b.ReportMetric(baselineSum/float64(baselineRuns)/perOp, "speedup-x")
					}
				})
			}
		})
	}
}

// exampleRequests renders every release of examples/manifest for both
// clusters, blue (active) and green (standby), with the manifest's values and
// overlays: 5 releases × 2 clusters. (The example manifest's staged enablement
// gives green only two of them; the benchmark renders all five on both, so the
// work is the same as on a fully enabled Standby.)
func exampleRequests(tb testing.TB) []Request {
	tb.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "examples", "manifest"))
	if err != nil {
		tb.Fatal(err)
	}
	file := func(rel string) ValuesLayer {
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			tb.Fatal(err)
		}
		return ValuesLayer{Source: rel, File: data}
	}
	type release struct {
		name, namespace string
		keep            bool // standby: keep
		values          []ValuesLayer
		green           []ValuesLayer
	}
	releases := []release{
		{name: "platform", namespace: "platform", keep: true},
		{name: "cache", namespace: "shop"},
		{name: "example", namespace: "example",
			values: []ValuesLayer{file("values/example.yaml"), {Source: "releases[2].set", Set: map[string]any{"image.tag": "1.2.3"}}},
			green:  []ValuesLayer{file("values/example-green.yaml")}},
		{name: "storefront", namespace: "shop", values: []ValuesLayer{file("values/storefront.yaml")}},
		{name: "orders-worker", namespace: "shop"},
	}
	var reqs []Request
	for _, c := range []struct {
		name string
		role Role
	}{{"blue", RoleActive}, {"green", RoleStandby}} {
		for _, rel := range releases {
			values := rel.values
			if c.role == RoleStandby {
				values = append(append([]ValuesLayer(nil), values...), rel.green...)
			}
			reqs = append(reqs, Request{
				Cluster: c.name, Release: rel.name, Namespace: rel.namespace,
				Chart:  ChartSource{Dir: filepath.Join(dir, "charts", rel.name)},
				Values: values,
				Overlay: Overlay{Release: rel.name, Cluster: c.name, Role: c.role, ScaleToZero: !rel.keep,
					DNSPrefix: prefix, ActiveWeight: 100},
			})
		}
	}
	return reqs
}

// syntheticRequests returns n releases of one small chart (Deployment,
// Service, ConfigMap, Ingress), each with
// its own name and values, for blue (active) and green (standby).
func syntheticRequests(tb testing.TB, n int) []Request {
	tb.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "e2e", "testdata", "charts", "svc")) // shared with e2e/bench
	if err != nil {
		tb.Fatal(err)
	}

	var reqs []Request
	for _, c := range []struct {
		name string
		role Role
	}{{"blue", RoleActive}, {"green", RoleStandby}} {
		for i := range n {
			rel := fmt.Sprintf("svc-%03d", i)
			values := fmt.Sprintf("replicaCount: %d\nimage:\n  tag: \"1.%d.0\"\nhost: %s.shop.local\nconfig:\n  greeting: hello from %s\n  slot: \"%d\"\n",
				1+i%2, i, rel, rel, i)
			reqs = append(reqs, Request{
				Cluster: c.name, Release: rel, Namespace: "bench",
				Chart:   ChartSource{Dir: dir},
				Values:  []ValuesLayer{{Source: "values/" + rel + ".yaml", File: []byte(values)}},
				Overlay: Overlay{Release: rel, Cluster: c.name, Role: c.role, ScaleToZero: true, DNSPrefix: prefix, ActiveWeight: 100},
			})
		}
	}
	return reqs
}

// BenchmarkRenderIsolation measures what Options.Isolation costs: each
// manifest renders in process (the baseline), then isolated with workers
// reused across one RenderAll (how the Renderer runs them), then isolated
// with a worker per release (Render called once per request, what reuse
// saves). The isolated runs report "slowdown-x", their time over the
// baseline's in the same run. Workers are this test binary (see TestMain);
// a race-enabled build makes them much slower.
//
//	go test -run '^$' -bench BenchmarkRenderIsolation -benchmem ./render/
func BenchmarkRenderIsolation(b *testing.B) {
	manifests := []struct {
		name string
		reqs func(testing.TB) []Request
	}{
		{"examples", exampleRequests},
		{"synthetic-100", func(tb testing.TB) []Request { return syntheticRequests(tb, 100) }},
	}
	for _, m := range manifests {
		b.Run(m.name, func(b *testing.B) {
			reqs := m.reqs(b)
			var baselineSum float64
			var baselineRuns int
			for _, mode := range []string{"in-process", "isolated", "isolated-worker-per-release"} {
				b.Run(mode, func(b *testing.B) {
					opts := DefaultOptions()
					if mode != "in-process" {
						opts = isolated(b, "serve")
					}
					ctx := context.Background()
					b.ReportAllocs()
					for b.Loop() {
						r := New(opts)
						var err error
						if mode == "isolated-worker-per-release" {
							g := new(errgroup.Group)
							g.SetLimit(r.opts.Concurrency)
							for _, req := range reqs {
								g.Go(func() error { _, err := r.Render(ctx, req); return err })
							}
							err = g.Wait()
						} else {
							_, err = r.RenderAll(ctx, reqs)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					b.ReportMetric(perOp/1e6/float64(len(reqs)), "ms/render")
					if mode == "in-process" {
						baselineSum += perOp
						baselineRuns++
					} else if baselineRuns > 0 {
						b.ReportMetric(perOp/(baselineSum/float64(baselineRuns)), "slowdown-x")
					}
				})
			}
		})
	}
}
