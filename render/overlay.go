package render

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"helm.sh/helm/v3/pkg/postrender"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Labels and annotations that tandem puts on every object it renders, so that an
// object found in a cluster leads back to its release, cluster and role.
const (
	LabelRelease          = "tandem.dev/release"
	LabelCluster          = "tandem.dev/cluster"
	LabelRole             = "tandem.dev/role"
	AnnotationActiveCount = "tandem.dev/active-replicas"
	AnnotationKEDAPaused  = "autoscaling.keda.sh/paused-replicas"
	// AnnotationHeld marks a CronJob the overlay suspended or a ScaledObject
	// it paused (a workload it scaled to zero carries AnnotationActiveCount):
	// the Standby guard refuses resuming an object that keeps the marker, and
	// tandem's own writes that resume it drop the marker in the same write.
	AnnotationHeld = "tandem.dev/held"
)

// Role is the overlay's view of a cluster's role.
type Role string

const (
	RoleActive  Role = "active"
	RoleStandby Role = "standby"
)

// Overlay is the per-cluster post-render step. It is a value: the reconciler
// builds one per release and cluster and hands it to Render; the install then
// gets the overlaid result through Planned, so both apply identical objects.
type Overlay struct {
	// Release is the release name recorded in the tandem.dev/release label.
	Release string
	// Cluster is the cluster name: the ExternalDNS set-identifier.
	Cluster string
	// Role decides the DNS weight and whether workloads are scaled to zero.
	Role Role
	// ScaleToZero, on a Standby cluster, scales workloads to zero. It is
	// ignored on Active clusters. CronJobs are suspended on every Standby,
	// whatever ScaleToZero says: a singleton job must not run on two clusters.
	ScaleToZero bool
	// DNSPrefix is the ExternalDNS annotation prefix, e.g. "external-dns.alpha.kubernetes.io/".
	DNSPrefix string
	// ActiveWeight is the record weight on Active clusters; Standby clusters get 0.
	ActiveWeight int
	// RunStandbyHooks lets the release's Helm hooks run where the overlay
	// scales workloads down (the release's standbyHooks: run). Without it
	// they are skipped there: see SkipHooks.
	RunStandbyHooks bool
	// Knobs, when set, replace what Role and ScaleToZero decide: a
	// switchover phase is a role in between (workloads up but DNS weight
	// still 0, say). nil keeps the plain Active/Standby overlay, byte for
	// byte what it was before knobs existed.
	Knobs *Knobs
}

// Knobs are the three things the overlay turns on a cluster: whether
// workloads run, the DNS record weight, and whether CronJobs are suspended.
// Plain Active is {Weight: ActiveWeight}; plain Standby with scale-to-zero
// is {ScaleDown: true, SuspendCronJobs: true, Weight: 0}; plain Standby with
// standby: keep is {SuspendCronJobs: true}.
type Knobs struct {
	// ScaleDown sets Deployments, StatefulSets and ReplicaSets to zero
	// replicas (keeping the rendered count in AnnotationActiveCount) and
	// pauses KEDA ScaledObjects at zero.
	ScaleDown bool `json:"scaleDown"`
	// SuspendCronJobs sets suspend: true on CronJobs.
	SuspendCronJobs bool `json:"suspendCronJobs"`
	// Weight is the ExternalDNS weight of every DNS record.
	Weight int `json:"weight"`
}

// Effective returns the knobs the overlay applies: Knobs when set, else
// those of the plain role.
func (o Overlay) Effective() Knobs {
	if o.Knobs != nil {
		return *o.Knobs
	}
	switch o.Role {
	case RoleActive:
		return Knobs{Weight: o.ActiveWeight}
	case RoleStandby:
		return Knobs{ScaleDown: o.ScaleToZero, SuspendCronJobs: true}
	}
	return Knobs{}
}

// SkipHooks says the release must be installed and upgraded without its
// Helm hooks on this cluster: the overlay scales its workloads down (a
// scale-to-zero release on a Standby, or a switchover phase that does) and
// the release did not opt in with RunStandbyHooks. Helm 3 does not
// post-render hooks, so a hook Job (a database migration) would otherwise
// run there at full strength.
func (o Overlay) SkipHooks() bool {
	return o.Effective().ScaleDown && !o.RunStandbyHooks
}

var _ postrender.PostRenderer = Overlay{}

// Run implements Helm's post-renderer: it applies the overlay to every document
// of a rendered multi-document manifest, keeping each document's "# Source:"
// comment and its order. A List (any object with items, as Helm's apply
// decodes it) is replaced by its items, each overlaid like any other object.
func (o Overlay) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	docs, err := splitDocuments(in.Bytes())
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	out := new(bytes.Buffer)
	for _, d := range docs {
		obj := map[string]any{}
		if err := yaml.Unmarshal(d.body, &obj); err != nil {
			return nil, fmt.Errorf("overlay: %s: %w", d.sourceOr("manifest"), err)
		}
		if len(obj) == 0 {
			continue
		}
		// A List's items are applied one by one (see flattenList): each
		// becomes a document of its own, with the List's template as source.
		objs, err := flattenList(obj)
		if err != nil {
			return nil, fmt.Errorf("overlay: %s: %w", d.sourceOr(objectID(obj)), err)
		}
		for _, obj := range objs {
			if err := o.apply(obj); err != nil {
				return nil, fmt.Errorf("overlay: %s: %w", d.sourceOr(objectID(obj)), err)
			}
			b, err := yaml.Marshal(obj)
			if err != nil {
				return nil, fmt.Errorf("overlay: %s: %w", d.sourceOr(objectID(obj)), err)
			}
			out.WriteString("---\n")
			if d.source != "" {
				out.WriteString("# Source: " + d.source + "\n")
			}
			out.Write(b)
		}
	}
	return out, nil
}

func (o Overlay) weight() string { return strconv.Itoa(o.Effective().Weight) }

// apply mutates one object in place.
func (o Overlay) apply(obj map[string]any) error {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	group := apiGroup(apiVersion)

	// The markers are the overlay's alone: the Standby guard refuses raising
	// a workload that carries one, and tandem's writes that raise it drop the
	// marker. A chart that set one itself would keep it in the Active and warm
	// renders, so the guard would refuse tandem's own switchover.
	for _, key := range []string{AnnotationActiveCount, AnnotationHeld} {
		if _, ok := metaMap(obj, "annotations")[key]; ok {
			return fmt.Errorf("metadata.annotations: %s is set by tandem's overlay and may not come from a chart", key)
		}
	}

	setMeta(obj, "labels", LabelRelease, o.Release)
	setMeta(obj, "labels", LabelCluster, o.Cluster)
	setMeta(obj, "labels", LabelRole, string(o.Role))

	switch {
	case kind == "Ingress" && (group == "networking.k8s.io" || group == "extensions"):
		o.weighRecord(obj)
	case kind == "Service" && group == "":
		_, hasHost := metaMap(obj, "annotations")[o.DNSPrefix+"hostname"]
		spec, _ := obj["spec"].(map[string]any)
		if t, _ := spec["type"].(string); hasHost || t == "LoadBalancer" {
			o.weighRecord(obj)
		}
	case group == "gateway.networking.k8s.io" && isRouteKind(kind):
		o.weighRecord(obj)
	case kind == "DNSEndpoint" && group == "externaldns.k8s.io":
		if err := o.weighEndpoints(obj); err != nil {
			return err
		}
	}

	k := o.Effective()
	switch {
	case k.ScaleDown && group == "apps" && (kind == "Deployment" || kind == "StatefulSet" || kind == "ReplicaSet"):
		spec := ensureMap(obj, "spec")
		replicas := int64(1) // the API server's default when the chart omits it
		if v, ok := spec["replicas"]; ok && v != nil {
			n, ok := toInt(v)
			if !ok {
				return fmt.Errorf("spec.replicas: not an integer: %v", v)
			}
			replicas = n
		}
		spec["replicas"] = int64(0)
		setMeta(obj, "annotations", AnnotationActiveCount, strconv.FormatInt(replicas, 10))
	case k.SuspendCronJobs && group == "batch" && kind == "CronJob":
		ensureMap(obj, "spec")["suspend"] = true
		setMeta(obj, "annotations", AnnotationHeld, "standby")
	case k.ScaleDown && group == "keda.sh" && kind == "ScaledObject":
		setMeta(obj, "annotations", AnnotationKEDAPaused, "0")
		setMeta(obj, "annotations", AnnotationHeld, "standby")
	}
	return nil
}

func (o Overlay) weighRecord(obj map[string]any) {
	setMeta(obj, "annotations", o.DNSPrefix+"set-identifier", o.Cluster)
	setMeta(obj, "annotations", o.DNSPrefix+"aws-weight", o.weight())
}

// weighEndpoints sets setIdentifier and the aws/weight provider-specific
// property on every endpoint of an ExternalDNS DNSEndpoint.
func (o Overlay) weighEndpoints(obj map[string]any) error {
	spec, _ := obj["spec"].(map[string]any)
	eps, _ := spec["endpoints"].([]any)
	for i, e := range eps {
		ep, ok := e.(map[string]any)
		if !ok {
			return fmt.Errorf("spec.endpoints[%d]: not an object", i)
		}
		ep["setIdentifier"] = o.Cluster
		props, _ := ep["providerSpecific"].([]any)
		kept := make([]any, 0, len(props)+1)
		for _, p := range props {
			if pm, ok := p.(map[string]any); ok && pm["name"] == "aws/weight" {
				continue
			}
			kept = append(kept, p)
		}
		ep["providerSpecific"] = append(kept, map[string]any{"name": "aws/weight", "value": o.weight()})
	}
	return nil
}

func isRouteKind(kind string) bool {
	switch kind {
	case "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute":
		return true
	}
	return false
}

func apiGroup(apiVersion string) string {
	if i := strings.LastIndex(apiVersion, "/"); i >= 0 {
		return apiVersion[:i]
	}
	return ""
}

func ensureMap(obj map[string]any, key string) map[string]any {
	m, ok := obj[key].(map[string]any)
	if !ok {
		m = map[string]any{}
		obj[key] = m
	}
	return m
}

func metaMap(obj map[string]any, field string) map[string]any {
	meta, _ := obj["metadata"].(map[string]any)
	m, _ := meta[field].(map[string]any)
	return m
}

func setMeta(obj map[string]any, field, key, value string) {
	ensureMap(ensureMap(obj, "metadata"), field)[key] = value
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case float64:
		if n == float64(int64(n)) {
			return int64(n), true
		}
	}
	return 0, false
}

func objectID(obj map[string]any) string {
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	return kind + "/" + name
}

type document struct {
	source string // the template path from Helm's "# Source:" comment
	hook   string // for an item of a List, the List's helm.sh/hook annotation
	body   []byte
	// obj is body parsed, when expandLists has parsed it (nil otherwise).
	obj map[string]any
}

func (d document) sourceOr(fallback string) string {
	if d.source != "" {
		return d.source
	}
	return fallback
}

// splitDocuments splits a multi-document YAML stream with the apimachinery
// reader, remembering each document's "# Source:" comment.
func splitDocuments(b []byte) ([]document, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs []document
	for {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		d := document{body: raw}
		for _, line := range strings.Split(string(raw), "\n") {
			if s, ok := strings.CutPrefix(line, "# Source: "); ok {
				d.source = strings.TrimSpace(s)
				break
			}
		}
		if len(bytes.TrimSpace(raw)) > 0 {
			docs = append(docs, d)
		}
	}
}
