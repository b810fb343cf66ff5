package clusters

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ServingOptions say which objects ReadServing reads.
type ServingOptions struct {
	// AnnotationPrefix is the DNS controller's annotation prefix (the
	// manifest's dns.annotationPrefix), e.g. "external-dns.alpha.kubernetes.io/".
	AnnotationPrefix string
	// ReleaseLabel is the label every object of a tandem release carries
	// (its value the release name); only objects with it are read.
	ReleaseLabel string
}

// DefaultServingOptions are ExternalDNS's prefix and tandem's release label.
func DefaultServingOptions() ServingOptions {
	return ServingOptions{AnnotationPrefix: "external-dns.alpha.kubernetes.io/", ReleaseLabel: "tandem.dev/release"}
}

// Serving is what a cluster serves, read back from its live objects: the
// DNS weight of each hostname, which CronJobs are suspended and which
// workloads are available. It is what `tandem status` shows and what the
// switchover's invariants are checked against.
type Serving struct {
	Records   []DNSRecord     `json:"dnsRecords"`
	CronJobs  []CronJobState  `json:"cronJobs"`
	Workloads []WorkloadState `json:"workloads"`
}

// DNSRecord is one hostname's weighted record as one object asks for it.
type DNSRecord struct {
	Hostname string `json:"hostname"`
	Weight   int    `json:"weight"`
	// Object is "Kind namespace/name"; Release "namespace/release".
	Object  string `json:"object"`
	Release string `json:"release"`
}

// CronJobState is one tandem CronJob.
type CronJobState struct {
	Object    string `json:"object"`
	Release   string `json:"release"`
	Suspended bool   `json:"suspended"`
}

// WorkloadState is one tandem Deployment or StatefulSet.
type WorkloadState struct {
	Object    string `json:"object"`
	Release   string `json:"release"`
	Replicas  int32  `json:"replicas"`
	Available int32  `json:"available"`
	// Held says tandem holds it at zero on a Standby (it carries
	// GuardReplicasAnnotation).
	Held bool `json:"held,omitempty"`
}

// Weights is the weight of each hostname; where objects disagree, the
// lowest (a hostname counts as open only when every record of it is).
func (s *Serving) Weights() map[string]int {
	out := map[string]int{}
	for _, r := range s.Records {
		if w, ok := out[r.Hostname]; !ok || r.Weight < w {
			out[r.Hostname] = r.Weight
		}
	}
	return out
}

// SuspendedCronJobs counts the suspended CronJobs and all of them.
func (s *Serving) SuspendedCronJobs() (suspended, total int) {
	for _, c := range s.CronJobs {
		if c.Suspended {
			suspended++
		}
	}
	return suspended, len(s.CronJobs)
}

func held(m metav1.ObjectMeta) bool {
	_, ok := m.Annotations[GuardReplicasAnnotation]
	return ok
}

// Available says whether every workload of a release (namespace/release)
// has replicas and at least one available; true for a release without any.
func (s *Serving) Available(release string) bool {
	for _, w := range s.Workloads {
		if w.Release == release && (w.Replicas == 0 || w.Available == 0) {
			return false
		}
	}
	return true
}

// weightedKinds are the kinds ExternalDNS reads weights from that are not
// built in; each is read only where the cluster serves it.
var weightedKinds = []schema.GroupVersionResource{
	{Group: "externaldns.k8s.io", Version: "v1alpha1", Resource: "dnsendpoints"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "grpcroutes"},
}

// ReadServing reads the tandem-labelled DNS objects (Ingresses, Services,
// Gateway routes and DNSEndpoints that carry a weight), CronJobs,
// Deployments and StatefulSets of every namespace. It only reads.
func (c *Cluster) ReadServing(ctx context.Context, opts ServingOptions) (*Serving, error) {
	if opts.ReleaseLabel == "" {
		opts.ReleaseLabel = DefaultServingOptions().ReleaseLabel
	}
	sel := metav1.ListOptions{LabelSelector: opts.ReleaseLabel}
	s := &Serving{Records: []DNSRecord{}, CronJobs: []CronJobState{}, Workloads: []WorkloadState{}}
	weightKey, hostKey := opts.AnnotationPrefix+"aws-weight", opts.AnnotationPrefix+"hostname"
	release := func(m metav1.ObjectMeta) string { return m.Namespace + "/" + m.Labels[opts.ReleaseLabel] }
	record := func(kind string, m metav1.ObjectMeta, hosts []string) {
		w, ok := m.Annotations[weightKey]
		if !ok {
			return
		}
		n, _ := strconv.Atoi(strings.TrimSpace(w))
		if h := m.Annotations[hostKey]; h != "" {
			hosts = strings.Split(h, ",")
		}
		for _, h := range hosts {
			if h = strings.TrimSpace(h); h != "" {
				s.Records = append(s.Records, DNSRecord{Hostname: h, Weight: n, Object: kind + " " + m.Namespace + "/" + m.Name, Release: release(m)})
			}
		}
	}
	ings, err := c.clientset.NetworkingV1().Ingresses("").List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: list ingresses: %w", c.name, err)
	}
	for _, i := range ings.Items {
		var hosts []string
		for _, r := range i.Spec.Rules {
			hosts = append(hosts, r.Host)
		}
		record("Ingress", i.ObjectMeta, hosts)
	}
	svcs, err := c.clientset.CoreV1().Services("").List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: list services: %w", c.name, err)
	}
	for _, sv := range svcs.Items {
		record("Service", sv.ObjectMeta, nil)
	}
	for _, gvr := range weightedKinds {
		list, err := c.dynamic.Resource(gvr).Namespace("").List(ctx, sel)
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			continue // not served here
		}
		if err != nil {
			return nil, fmt.Errorf("cluster %q: list %s: %w", c.name, gvr.Resource, err)
		}
		for _, o := range list.Items {
			m := metav1.ObjectMeta{Name: o.GetName(), Namespace: o.GetNamespace(), Labels: o.GetLabels(), Annotations: o.GetAnnotations()}
			if gvr.Resource == "dnsendpoints" {
				s.Records = append(s.Records, endpointRecords(o, release(m))...)
				continue
			}
			hosts, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "hostnames")
			record(o.GetKind(), m, hosts)
		}
	}
	cjs, err := c.clientset.BatchV1().CronJobs("").List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: list cronjobs: %w", c.name, err)
	}
	for _, cj := range cjs.Items {
		s.CronJobs = append(s.CronJobs, CronJobState{Object: "CronJob " + cj.Namespace + "/" + cj.Name, Release: release(cj.ObjectMeta),
			Suspended: cj.Spec.Suspend != nil && *cj.Spec.Suspend})
	}
	deps, err := c.clientset.AppsV1().Deployments("").List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: list deployments: %w", c.name, err)
	}
	for _, d := range deps.Items {
		s.Workloads = append(s.Workloads, WorkloadState{Object: "Deployment " + d.Namespace + "/" + d.Name, Release: release(d.ObjectMeta),
			Replicas: replicasOf(d.Spec.Replicas), Available: d.Status.AvailableReplicas, Held: held(d.ObjectMeta)})
	}
	sts, err := c.clientset.AppsV1().StatefulSets("").List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: list statefulsets: %w", c.name, err)
	}
	for _, d := range sts.Items {
		s.Workloads = append(s.Workloads, WorkloadState{Object: "StatefulSet " + d.Namespace + "/" + d.Name, Release: release(d.ObjectMeta),
			Replicas: replicasOf(d.Spec.Replicas), Available: d.Status.AvailableReplicas, Held: held(d.ObjectMeta)})
	}
	sort.Slice(s.Records, func(i, j int) bool {
		a, b := s.Records[i], s.Records[j]
		return a.Hostname < b.Hostname || a.Hostname == b.Hostname && a.Object < b.Object
	})
	return s, nil
}

// endpointRecords are a DNSEndpoint's weighted endpoints (providerSpecific aws/weight).
func endpointRecords(o unstructured.Unstructured, release string) []DNSRecord {
	var out []DNSRecord
	eps, _, _ := unstructured.NestedSlice(o.Object, "spec", "endpoints")
	for _, e := range eps {
		ep, _ := e.(map[string]any)
		name, _ := ep["dnsName"].(string)
		props, _ := ep["providerSpecific"].([]any)
		for _, p := range props {
			pm, _ := p.(map[string]any)
			if pm["name"] != "aws/weight" {
				continue
			}
			v, _ := pm["value"].(string)
			n, _ := strconv.Atoi(v)
			out = append(out, DNSRecord{Hostname: name, Weight: n, Object: "DNSEndpoint " + o.GetNamespace() + "/" + o.GetName(), Release: release})
		}
	}
	return out
}

func replicasOf(p *int32) int32 {
	if p == nil {
		return 1 // the API server's default
	}
	return *p
}
