package switchover_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	annHostname = "external-dns.alpha.kubernetes.io/hostname"
	annWeight   = "external-dns.alpha.kubernetes.io/aws-weight"
	labelRel    = "tandem.dev/release"
)

// sampler reads the live objects of both clusters every 100 ms and records
// every violation of the switchover's invariants.
type sampler struct {
	kube   map[string]kubernetes.Interface
	order  []string // clusters in the order read: the source first (see read)
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	checks int
	bad    []string
}

// startSampler samples until the returned sampler is stopped. Clusters
// are read source first: a switchover raises the target's weight before it
// lowers the source's, so a sample that reads the source closed reads the
// target open.
func startSampler(kube map[string]kubernetes.Interface, order ...string) *sampler {
	s := &sampler{kube: kube, order: order, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// finish stops sampling and fails t on any violation.
func (s *sampler) finish(t *testing.T) {
	t.Helper()
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.checks < 10 {
		t.Errorf("only %d samples", s.checks)
	}
	if len(s.bad) > 0 {
		n := len(s.bad)
		if n > 20 {
			s.bad = s.bad[:20]
		}
		t.Errorf("%d invariant violations in %d samples, first ones:\n%s", n, s.checks, strings.Join(s.bad, "\n"))
	}
	t.Logf("invariants held in %d samples", s.checks)
}

type liveCluster struct {
	weights   map[string]int    // host → weight
	hostRel   map[string]string // host → namespace/release serving it
	available map[string]bool   // namespace/release → all its workloads available with replicas > 0
	cronOn    map[string]bool   // namespace/name → unsuspended
}

func (s *sampler) read(ctx context.Context, name string) (*liveCluster, error) {
	k := s.kube[name]
	lc := &liveCluster{weights: map[string]int{}, hostRel: map[string]string{}, available: map[string]bool{}, cronOn: map[string]bool{}}
	add := func(ns string, meta metav1.ObjectMeta, hosts ...string) {
		w, ok := meta.Annotations[annWeight]
		if !ok {
			return
		}
		var n int
		fmt.Sscan(w, &n)
		for _, h := range hosts {
			if h != "" {
				lc.weights[h] = n
				lc.hostRel[h] = ns + "/" + meta.Labels[labelRel]
			}
		}
	}
	ings, err := k.NetworkingV1().Ingresses("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, i := range ings.Items {
		add(i.Namespace, i.ObjectMeta, i.Annotations[annHostname])
	}
	svcs, err := k.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, sv := range svcs.Items {
		add(sv.Namespace, sv.ObjectMeta, sv.Annotations[annHostname])
	}
	deps, err := k.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: labelRel})
	if err != nil {
		return nil, err
	}
	for _, d := range deps.Items {
		rel := d.Namespace + "/" + d.Labels[labelRel]
		ok := d.Spec.Replicas != nil && *d.Spec.Replicas > 0 && d.Status.AvailableReplicas > 0
		if cur, seen := lc.available[rel]; !seen || cur {
			lc.available[rel] = ok
		}
	}
	sts, err := k.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{LabelSelector: labelRel})
	if err != nil {
		return nil, err
	}
	for _, d := range sts.Items {
		rel := d.Namespace + "/" + d.Labels[labelRel]
		ok := d.Spec.Replicas != nil && *d.Spec.Replicas > 0 && d.Status.AvailableReplicas > 0
		if cur, seen := lc.available[rel]; !seen || cur {
			lc.available[rel] = ok
		}
	}
	cjs, err := k.BatchV1().CronJobs("").List(ctx, metav1.ListOptions{LabelSelector: labelRel})
	if err != nil {
		return nil, err
	}
	for _, c := range cjs.Items {
		lc.cronOn[c.Namespace+"/"+c.Name] = c.Spec.Suspend == nil || !*c.Spec.Suspend
	}
	return lc, nil
}

// readCronJobs reads which of a cluster's tandem CronJobs are unsuspended.
func (s *sampler) readCronJobs(ctx context.Context, name string) (map[string]bool, error) {
	cjs, err := s.kube[name].BatchV1().CronJobs("").List(ctx, metav1.ListOptions{LabelSelector: labelRel})
	if err != nil {
		return nil, err
	}
	on := map[string]bool{}
	for _, c := range cjs.Items {
		on[c.Namespace+"/"+c.Name] = c.Spec.Suspend == nil || !*c.Spec.Suspend
	}
	return on, nil
}

func (s *sampler) sample() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// CronJobs are read targets first, before anything else: a switchover
	// suspends the source's before it resumes the target's, so a sample
	// that reads a target's resumed already reads the source's suspended.
	// (Read after the source, a target's could be resumed since, on a
	// loaded machine where one cluster's reads take seconds.)
	cronOn := map[string]map[string]bool{}
	for _, name := range s.order[1:] {
		on, err := s.readCronJobs(ctx, name)
		if err != nil {
			return
		}
		cronOn[name] = on
	}
	live := map[string]*liveCluster{}
	for _, name := range s.order {
		lc, err := s.read(ctx, name)
		if err != nil {
			return // an API server stopped on purpose: nothing to read
		}
		live[name] = lc
	}
	var bad []string
	hosts := map[string]bool{}
	for _, lc := range live {
		for h := range lc.weights {
			hosts[h] = true
		}
	}
	for h := range hosts {
		total := 0
		for name, lc := range live {
			w, ok := lc.weights[h]
			total += w
			if ok && w > 0 {
				if rel := lc.hostRel[h]; lc.available[rel] == false {
					if _, has := lc.available[rel]; has {
						bad = append(bad, fmt.Sprintf("%s: %s has weight %d but release %s's workloads are not available", name, h, w, rel))
					}
				}
			}
		}
		if total == 0 {
			bad = append(bad, fmt.Sprintf("%s: every weight is 0", h))
		}
	}
	on := map[string][]string{}
	for name, lc := range live {
		crons := lc.cronOn
		if early, ok := cronOn[name]; ok {
			crons = early
		}
		for cj, running := range crons {
			if running {
				on[cj] = append(on[cj], name)
			}
		}
	}
	for cj, names := range on {
		if len(names) > 1 {
			sort.Strings(names)
			bad = append(bad, fmt.Sprintf("CronJob %s unsuspended on %s", cj, strings.Join(names, " and ")))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks++
	for _, b := range bad {
		s.bad = append(s.bad, time.Now().Format("15:04:05.000")+" "+b)
	}
}
