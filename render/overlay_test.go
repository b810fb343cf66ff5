package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

const prefix = "external-dns.alpha.kubernetes.io/"

func runOverlay(t *testing.T, o Overlay, in string) map[string]any {
	t.Helper()
	out, err := o.Run(bytes.NewBufferString(in))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	docs, err := splitDocuments(out.Bytes())
	if err != nil || len(docs) != 1 {
		t.Fatalf("want one document, got %d (%v):\n%s", len(docs), err, out)
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(docs[0].body, &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestOverlay(t *testing.T) {
	active := Overlay{Release: "web", Cluster: "blue", Role: RoleActive, ScaleToZero: true, DNSPrefix: prefix, ActiveWeight: 100}
	standby := Overlay{Release: "web", Cluster: "green", Role: RoleStandby, ScaleToZero: true, DNSPrefix: prefix, ActiveWeight: 100}
	keep := standby
	keep.ScaleToZero = false
	newPrefix := active
	newPrefix.DNSPrefix = "external-dns.kubernetes.io/"

	tests := []struct {
		name    string
		overlay Overlay
		in      string
		path    []string // where to look in the output
		want    any
	}{
		{"ingress active weight", active, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\n",
			[]string{"metadata", "annotations"}, map[string]any{prefix + "set-identifier": "blue", prefix + "aws-weight": "100"}},
		{"ingress standby weight zero", standby, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, annotations: {a: b}}\n",
			[]string{"metadata", "annotations"}, map[string]any{"a": "b", prefix + "set-identifier": "green", prefix + "aws-weight": "0"}},
		{"ingress keep mode still weight zero", keep, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\n",
			[]string{"metadata", "annotations", prefix + "aws-weight"}, "0"},
		{"annotation prefix honoured", newPrefix, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\n",
			[]string{"metadata", "annotations"}, map[string]any{"external-dns.kubernetes.io/set-identifier": "blue", "external-dns.kubernetes.io/aws-weight": "100"}},
		{"service with hostname", standby, "apiVersion: v1\nkind: Service\nmetadata: {name: web, annotations: {" + prefix + "hostname: a.example}}\nspec: {type: ClusterIP}\n",
			[]string{"metadata", "annotations", prefix + "aws-weight"}, "0"},
		{"load balancer service", active, "apiVersion: v1\nkind: Service\nmetadata: {name: edge}\nspec: {type: LoadBalancer}\n",
			[]string{"metadata", "annotations", prefix + "set-identifier"}, "blue"},
		{"plain service untouched", standby, "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {type: ClusterIP}\n",
			[]string{"metadata", "annotations"}, nil},
		{"http route", standby, "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web}\n",
			[]string{"metadata", "annotations", prefix + "aws-weight"}, "0"},
		{"grpc route", active, "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: web}\n",
			[]string{"metadata", "annotations", prefix + "aws-weight"}, "100"},
		{"dnsendpoint endpoints", standby, "apiVersion: externaldns.k8s.io/v1alpha1\nkind: DNSEndpoint\nmetadata: {name: web}\nspec:\n  endpoints:\n  - dnsName: a.example\n    providerSpecific: [{name: aws/weight, value: \"100\"}, {name: x, value: \"y\"}]\n",
			[]string{"spec", "endpoints"}, []any{map[string]any{"dnsName": "a.example", "setIdentifier": "green",
				"providerSpecific": []any{map[string]any{"name": "x", "value": "y"}, map[string]any{"name": "aws/weight", "value": "0"}}}}},
		{"deployment standby scaled to zero", standby, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n",
			[]string{"spec", "replicas"}, float64(0)},
		{"deployment standby keeps count", standby, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n",
			[]string{"metadata", "annotations", AnnotationActiveCount}, "3"},
		{"deployment without replicas counts the default", standby, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {}\n",
			[]string{"metadata", "annotations", AnnotationActiveCount}, "1"},
		{"statefulset standby", standby, "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec: {replicas: 3}\n",
			[]string{"spec", "replicas"}, float64(0)},
		{"replicaset standby", standby, "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: rs}\nspec: {replicas: 2}\n",
			[]string{"spec", "replicas"}, float64(0)},
		{"deployment active untouched", active, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n",
			[]string{"spec", "replicas"}, float64(3)},
		{"deployment keep mode untouched", keep, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n",
			[]string{"spec", "replicas"}, float64(3)},
		{"cronjob suspended", standby, "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec: {schedule: '* * * * *'}\n",
			[]string{"spec", "suspend"}, true},
		{"cronjob keep mode suspended on standby", keep, "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec: {schedule: '* * * * *'}\n",
			[]string{"spec", "suspend"}, true},
		{"cronjob active not suspended", active, "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec: {schedule: '* * * * *'}\n",
			[]string{"spec", "suspend"}, nil},
		{"keda paused", standby, "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: web}\n",
			[]string{"metadata", "annotations", AnnotationKEDAPaused}, "0"},
		{"hpa left alone", standby, "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec: {minReplicas: 2}\n",
			[]string{"spec", "minReplicas"}, float64(2)},
		{"labels find the release again", standby, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
			[]string{"metadata", "labels"}, map[string]any{LabelRelease: "web", LabelCluster: "green", LabelRole: "standby"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lookup(runOverlay(t, tt.overlay, tt.in), tt.path)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%v (-want +got):\n%s", tt.path, diff)
			}
		})
	}
}

func lookup(obj map[string]any, path []string) any {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func TestOverlayKeepsSourceCommentsAndOrder(t *testing.T) {
	in := "---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# Source: c/templates/b.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n---\n\n"
	out, err := Overlay{Release: "r", Cluster: "blue", Role: RoleActive, ActiveWeight: 100}.Run(bytes.NewBufferString(in))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := splitDocuments(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range docs {
		got = append(got, d.source)
	}
	if diff := cmp.Diff([]string{"c/templates/a.yaml", "c/templates/b.yaml"}, got); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
}

func TestOverlayRejectsNonIntegerReplicas(t *testing.T) {
	in := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: many}\n"
	_, err := Overlay{Cluster: "green", Role: RoleStandby, ScaleToZero: true}.Run(bytes.NewBufferString(in))
	if err == nil {
		t.Fatal("want an error for spec.replicas: many")
	}
}

// A chart that renders tandem's own markers is refused: kept in the Active or
// the warm render, they would make the Standby guard refuse the switchover.
func TestOverlayRefusesTandemMarkersFromTheChart(t *testing.T) {
	for _, tc := range []struct{ name, doc, key string }{
		{"active-replicas", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    tandem.dev/active-replicas: \"3\"\nspec:\n  replicas: 3\n", AnnotationActiveCount},
		{"held", "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: nightly\n  annotations:\n    tandem.dev/held: standby\nspec:\n  schedule: \"@daily\"\n", AnnotationHeld},
	} {
		for role, o := range map[string]Overlay{
			"active":  {Release: "web", Cluster: "blue", Role: RoleActive, ActiveWeight: 100},
			"warm":    {Release: "web", Cluster: "green", Role: RoleStandby, ScaleToZero: true, Knobs: &Knobs{SuspendCronJobs: true}},
			"standby": {Release: "web", Cluster: "green", Role: RoleStandby, ScaleToZero: true},
		} {
			_, err := o.Run(bytes.NewBufferString("# Source: web/templates/x.yaml\n" + tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), "web/templates/x.yaml") {
				t.Errorf("%s, %s render: error = %v, want one naming %s and the template", tc.name, role, err, tc.key)
			}
		}
	}
}
