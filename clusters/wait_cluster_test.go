package clusters

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWaitHealthy(t *testing.T) {
	ctx, c, _ := connect(t)
	ns := testNamespace(t)

	install := func(t *testing.T, name, chartName string, values map[string]any) *Release {
		t.Helper()
		rel, err := c.Install(ctx, ReleaseRequest{Name: name, Namespace: ns, Chart: loadChart(t, chartName), Values: values})
		if err != nil {
			t.Fatal(err)
		}
		return rel
	}
	wait := func(rel *Release, timeout time.Duration, progress func([]ObjectStatus)) ([]ObjectStatus, error) {
		return c.WaitHealthy(ctx, rel.Manifest, WaitOptions{Namespace: rel.Namespace, Timeout: timeout, Interval: time.Second, Progress: progress})
	}

	t.Run("available deployment is current", func(t *testing.T) {
		rel := install(t, "web", "web", nil)
		calls := 0
		got, err := wait(rel, 2*time.Minute, func([]ObjectStatus) { calls++ })
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 {
			t.Fatalf("WaitHealthy() = %v, want 3 objects", got)
		}
		for _, s := range got {
			if !s.Current() || s.Namespace != ns {
				t.Errorf("%s: want Current in %s", s, ns)
			}
			if s.Kind == "Deployment" && !strings.Contains(s.Message, "Replicas: 2") {
				t.Errorf("%s: want the deployment available with 2 replicas", s)
			}
		}
		if calls == 0 {
			t.Error("Progress never called")
		}
	})

	t.Run("changes are watched, not polled", func(t *testing.T) {
		rel := install(t, "watched", "web", nil)
		before, start := c.Requests(), time.Now()
		// An interval longer than the wait: only watches (and the read
		// every maxProgressGap) can see the Deployment become available.
		got, err := c.WaitHealthy(ctx, rel.Manifest, WaitOptions{Namespace: rel.Namespace, Timeout: 2 * time.Minute, Interval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range got {
			if !s.Current() {
				t.Errorf("%s: want Current", s)
			}
		}
		n, objects := c.Requests()-before, int64(len(got))
		rereads := int64(time.Since(start) / maxProgressGap)
		if limit := 2*objects + rereads*objects; n > limit {
			t.Errorf("the wait made %d requests for %d objects over %s; want at most one read and one watch each, plus a read of each every %s (%d)",
				n, objects, time.Since(start).Round(time.Millisecond), maxProgressGap, limit)
		}
	})

	t.Run("zero replicas is current", func(t *testing.T) {
		rel := install(t, "idle", "web", map[string]any{"replicas": 0})
		if _, err := wait(rel, 2*time.Minute, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("never ready times out naming the object", func(t *testing.T) {
		rel := install(t, "stuck", "stuck", nil)
		got, err := wait(rel, 8*time.Second, nil)
		var he *HealthError
		if !errors.As(err, &he) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitHealthy(stuck) = %v, want a *HealthError from the deadline", err)
		}
		if len(he.Objects) != 1 || he.Objects[0].Kind != "Deployment" || he.Objects[0].Name != "stuck" {
			t.Errorf("not-ready objects = %v, want the stuck Deployment", he.Objects)
		}
		if msg := err.Error(); !strings.Contains(msg, "Deployment "+ns+"/stuck: InProgress") || !strings.Contains(msg, `cluster "blue"`) {
			t.Errorf("error %q does not name the cluster and the object with its status", msg)
		}
		if len(got) != 1 || got[0].Current() {
			t.Errorf("statuses = %v, want the one not-Current deployment", got)
		}
	})

	t.Run("unnamespaced object without a namespace option is an error", func(t *testing.T) {
		manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n"
		_, err := c.WaitHealthy(ctx, manifest, WaitOptions{Timeout: time.Minute})
		if err == nil || !strings.Contains(err.Error(), "ConfigMap web has no namespace") {
			t.Errorf("WaitHealthy(no namespace) = %v, want an error naming the object", err)
		}
	})

	t.Run("missing object is not found", func(t *testing.T) {
		manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: never-created\n"
		_, err := c.WaitHealthy(ctx, manifest, WaitOptions{Namespace: ns, Timeout: 3 * time.Second, Interval: time.Second})
		var he *HealthError
		if !errors.As(err, &he) || len(he.Objects) != 1 || he.Objects[0].Status != "NotFound" {
			t.Errorf("WaitHealthy(missing) = %v, want NotFound", err)
		}
	})
}
