package switchover_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/reconciler"
)

// TestSwitchoverSourceDown: the source's API server is stopped (the
// disaster case). The run warms and opens the target, reports the phases
// that touch the source as skipped and exits 1 saying so. With the source
// back, the next run closes it, moves the CronJobs and cools it: it becomes
// Standby, and its weight is never raised on the way.
func TestSwitchoverSourceDown(t *testing.T) {
	h := newHarness(t)
	from := h.active(t)
	to := other(from)
	h.switchTo(t, to)
	if err := h.env.StopAPIServer(from); err != nil {
		t.Fatal(err)
	}
	restart := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := h.env.StartAPIServer(ctx, from); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(restart)
	res := h.reconcile(t)
	if res.Code != 1 || !strings.Contains(res.Stderr, to+" serves; phases 3–5 skipped until the source can be reached") {
		t.Errorf("source down: exit %d, want 1 saying the target serves and phases 3–5 wait\n%s", res.Code, res.Stderr)
	}
	var rep reconciler.Report
	res.JSON(t, &rep)
	if sw := rep.Switchover; sw == nil {
		t.Fatal("no switchover in the report")
	} else {
		var skipped []int
		for _, ph := range sw.Phases {
			if ph.Skipped != "" {
				skipped = append(skipped, ph.Number)
			}
		}
		if fmt.Sprint(skipped) != "[3 4 5]" || sw.Completed {
			t.Errorf("skipped phases %v, completed %v; want [3 4 5], not completed", skipped, sw.Completed)
		}
	}
	// The target serves with full weight.
	for host, w := range weights(t, h, to) {
		if w != 100 {
			t.Errorf("%s: %s weight %d, want 100", to, host, w)
		}
	}
	if st := h.state(t, to); st == nil || st.Switchover == nil || len(st.Switchover.Skipped) != 3 {
		t.Errorf("%s's record does not list the skipped phases: %+v", to, st)
	}

	restart()
	s := startSampler(h.kube, from, to)
	w := watchWeights(t, h, from)
	res = h.reconcile(t)
	s.finish(t)
	w.finish(t)
	if res.Code != 0 {
		t.Fatalf("source back: exit %d\n%s", res.Code, res.Stderr)
	}
	rep = reconciler.Report{}
	res.JSON(t, &rep)
	if sw := rep.Switchover; sw == nil || !sw.Completed || sw.ResumedAt != reconciler.PhaseClose {
		t.Errorf("source back: switchover %+v, want resumed at phase 3 and completed", sw)
	}
	if got, want := h.roles(t), map[string]string{"green": "blue=standby green=active", "blue": "blue=active green=standby"}[to]; got != want {
		t.Errorf("roles in effect %q, want %q", got, want)
	}
	for host, w := range weights(t, h, from) {
		if w != 0 {
			t.Errorf("%s: %s weight %d, want 0", from, host, w)
		}
	}
}

// weights reads a cluster's weight annotations per hostname.
func weights(t *testing.T, h *harness, cluster string) map[string]int {
	t.Helper()
	s := &sampler{kube: h.kube}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lc, err := s.read(ctx, cluster)
	if err != nil {
		t.Fatal(err)
	}
	if len(lc.weights) == 0 {
		t.Fatalf("%s: no weighted DNS objects", cluster)
	}
	return lc.weights
}

// weightWatch fails the test if any of a cluster's weights ever rises.
type weightWatch struct {
	stop, done chan struct{}
	mu         sync.Mutex
	bad        []string
}

func watchWeights(t *testing.T, h *harness, cluster string) *weightWatch {
	w := &weightWatch{stop: make(chan struct{}), done: make(chan struct{})}
	last := weights(t, h, cluster)
	s := &sampler{kube: h.kube}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			lc, err := s.read(ctx, cluster)
			cancel()
			if err != nil {
				continue
			}
			for host, n := range lc.weights {
				if n > last[host] {
					w.mu.Lock()
					w.bad = append(w.bad, fmt.Sprintf("%s: %s weight raised %d → %d", cluster, host, last[host], n))
					w.mu.Unlock()
				}
				last[host] = n
			}
		}
	}()
	return w
}

func (w *weightWatch) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	if len(w.bad) > 0 {
		t.Errorf("weights raised:\n%s", strings.Join(w.bad, "\n"))
	}
}
