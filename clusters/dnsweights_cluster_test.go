package clusters

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestReadServing reads weights, CronJobs and workloads back from a real
// API server: only tandem-labelled objects, an Ingress's hosts from its
// rules unless the hostname annotation names them, a Service only with a
// weight, the lowest weight where two records of a hostname disagree.
func TestReadServing(t *testing.T) {
	ctx, c, e := connect(t)
	kube := adminClient(t, e)
	ns := testNamespace(t)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}) })
	const p = "external-dns.alpha.kubernetes.io/"
	meta := func(name, release string, ann map[string]string) metav1.ObjectMeta {
		m := metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: ann}
		if release != "" {
			m.Labels = map[string]string{"tandem.dev/release": release}
		}
		return m
	}
	pathType := networkingv1.PathTypePrefix
	backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}
	rule := func(host string) networkingv1.IngressRule {
		return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &pathType, Backend: backend}}}}}
	}
	ings := []networkingv1.Ingress{
		{ObjectMeta: meta("web", "web", map[string]string{p + "aws-weight": "100"}), Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{rule("www.shop.example")}}},
		{ObjectMeta: meta("api", "web", map[string]string{p + "aws-weight": "0", p + "hostname": "api.shop.example, www.shop.example"}), Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{rule("ignored.example")}}},
		{ObjectMeta: meta("foreign", "", map[string]string{p + "aws-weight": "5"}), Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{rule("foreign.example")}}},
	}
	for _, i := range ings {
		if _, err := kube.NetworkingV1().Ingresses(ns).Create(ctx, &i, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	port := []corev1.ServicePort{{Port: 80}}
	for _, s := range []corev1.Service{
		{ObjectMeta: meta("edge", "edge", map[string]string{p + "aws-weight": "100", p + "hostname": "edge.shop.example"}), Spec: corev1.ServiceSpec{Ports: port}},
		{ObjectMeta: meta("plain", "edge", nil), Spec: corev1.ServiceSpec{Ports: port}},
	} {
		if _, err := kube.CoreV1().Services(ns).Create(ctx, &s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	yes, no := true, false
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}, RestartPolicy: corev1.RestartPolicyOnFailure}}
	for name, suspend := range map[string]*bool{"nightly": &yes, "hourly": &no} {
		cj := batchv1.CronJob{ObjectMeta: meta(name, "jobs", nil), Spec: batchv1.CronJobSpec{Schedule: "0 * * * *", Suspend: suspend,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}
		if _, err := kube.BatchV1().CronJobs(ns).Create(ctx, &cj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	zero := int32(0)
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyAlways
	dep := appsv1.Deployment{ObjectMeta: meta("web", "web", nil), Spec: appsv1.DeploymentSpec{Replicas: &zero,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}, Template: tmpl}}
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, &dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	s, err := c.ReadServing(ctx, DefaultServingOptions())
	if err != nil {
		t.Fatal(err)
	}
	var got []DNSRecord
	for _, r := range s.Records {
		if r.Release[:len(ns)] == ns {
			got = append(got, r)
		}
	}
	want := []DNSRecord{
		{Hostname: "api.shop.example", Weight: 0, Object: "Ingress " + ns + "/api", Release: ns + "/web"},
		{Hostname: "edge.shop.example", Weight: 100, Object: "Service " + ns + "/edge", Release: ns + "/edge"},
		{Hostname: "www.shop.example", Weight: 0, Object: "Ingress " + ns + "/api", Release: ns + "/web"},
		{Hostname: "www.shop.example", Weight: 100, Object: "Ingress " + ns + "/web", Release: ns + "/web"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if w := s.Weights(); w["www.shop.example"] != 0 || w["edge.shop.example"] != 100 {
		t.Errorf("weights %v: want the lowest of a hostname's records", w)
	}
	suspended, total := 0, 0
	for _, cj := range s.CronJobs {
		if cj.Release == ns+"/jobs" {
			total++
			if cj.Suspended {
				suspended++
			}
		}
	}
	if suspended != 1 || total != 2 {
		t.Errorf("cronjobs %d/%d suspended, want 1/2: %+v", suspended, total, s.CronJobs)
	}
	if s.Available(ns + "/web") {
		t.Error("a release scaled to zero counts as available")
	}
	if !s.Available(ns + "/none") {
		t.Error("a release without workloads counts as unavailable")
	}
}
