package switchover_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// TestSwitchoverTargetUnhealthyBlocks: green's nodes take no new pods, so
// phase 1 never turns healthy: the run stops there, exit 1 saying so, blue
// serves untouched. Once green takes pods again, the next run resumes and
// completes.
func TestSwitchoverTargetUnhealthyBlocks(t *testing.T) {
	h := newHarness(t)
	if h.state(t, "blue").Role != "active" {
		h.switchTo(t, "blue")
		if res := h.reconcile(t); res.Code != 0 {
			t.Fatalf("back to blue: exit %d", res.Code)
		}
	}
	h.repo.Replace(t, "tandem.yaml", "chart: ./charts/cache\n", "chart: ./charts/cache\n    timeout: 15s\n")
	h.repo.Commit(t, "short timeout for the blocked switchover")
	if res := h.reconcile(t); res.Code != 0 {
		t.Fatalf("exit %d", res.Code)
	}
	taint(t, h, "green", true)
	t.Cleanup(func() { taint(t, h, "green", false) })
	blueRevs := map[string]int{}
	for _, r := range []string{"cache", "storefront", "orders-worker"} {
		blueRevs[r] = h.helmRevisions(t, "blue", "shop", r)
	}
	h.switchTo(t, "green")
	s := startSampler(h.kube, "blue", "green")
	res := h.reconcile(t)
	if res.Code != 1 || !strings.Contains(res.Stdout+res.Stderr, "switchover blocked in phase 1: release shop/cache not healthy on green") {
		t.Errorf("want exit 1 naming the blocker, got %d\n%s", res.Code, res.Stderr)
	}
	for r, n := range blueRevs {
		if got := h.helmRevisions(t, "blue", "shop", r); got != n {
			t.Errorf("blue's %s touched: %d revisions, was %d", r, got, n)
		}
	}
	if st := h.state(t, "blue"); st.Switchover == nil || st.Switchover.Phase != 1 || !strings.Contains(st.Switchover.Blocked, "blocked in phase 1") || st.Role != "active" {
		t.Errorf("blue's record: role %s, switchover %+v", st.Role, st.Switchover)
	}
	st := e2etest.Run(t, h.bin, time.Minute, h.tandemEnv(), "status", "--manifest-dir", h.repo.Dir)
	if !strings.Contains(st.Stdout, "blue→green phase 1/5 warm BLOCKED") {
		t.Errorf("tandem status does not show the blocked switchover:\n%s", st.Stdout)
	}
	taint(t, h, "green", false)
	res = h.reconcile(t)
	s.finish(t)
	if res.Code != 0 {
		t.Fatalf("after the fix: exit %d\n%s", res.Code, res.Stderr)
	}
	if got := h.roles(t); got != "blue=standby green=active" {
		t.Errorf("roles in effect %q", got)
	}
}

// taint makes a cluster's nodes refuse (or take again) new pods.
func taint(t *testing.T, h *harness, cluster string, on bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes, err := h.kube[cluster].CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const key = "e2e.tandem.dev/no-new-pods"
	for _, n := range nodes.Items {
		// kwok updates the node's status meanwhile: retry on conflict.
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := h.kube[cluster].CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			var kept []corev1.Taint
			for _, tt := range cur.Spec.Taints {
				if tt.Key != key {
					kept = append(kept, tt)
				}
			}
			if on {
				kept = append(kept, corev1.Taint{Key: key, Value: "true", Effect: corev1.TaintEffectNoSchedule})
			}
			cur.Spec.Taints = kept
			_, err = h.kube[cluster].CoreV1().Nodes().Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
