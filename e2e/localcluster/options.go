package localcluster

import (
	"errors"
	"fmt"
	"io"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Options says which clusters Start brings up and where.
type Options struct {
	// Names are the clusters to start; each becomes a kubeconfig context of that
	// name. They must be distinct DNS labels.
	Names []string
	// Nodes is the number of kwok nodes per cluster.
	Nodes int
	// WorkDir holds every cluster's data, certificates, logs and the kubeconfig.
	// When empty, Start creates a temporary directory and Stop removes it; a
	// directory given here is left in place.
	WorkDir string
	// ToolsDir holds the binaries (kube-apiserver, etcd, kwok, helm, ...). When
	// empty, Start calls EnsureTools.
	ToolsDir string
	// Log receives progress lines; nil discards them. Process output never goes
	// here: it goes to log files in the work directory.
	Log io.Writer
	// ReadyTimeout bounds how long one cluster may take, once the binaries exist,
	// to have every process up, its nodes Ready and schedulable.
	ReadyTimeout time.Duration
	// ControllerQPS, when set, is the client-side rate limit (requests per
	// second, burst twice that) of kube-controller-manager and
	// kube-scheduler instead of their defaults (20 and 50): with a thousand
	// Deployments the ReplicaSet, Deployment and EndpointSlice controllers
	// otherwise queue behind their own limiter, as kwokctl's
	// --disable-qps-limits avoids. kwok's own client is not limited.
	ControllerQPS float32
}

// DefaultOptions returns two clusters, blue and green, with two nodes each.
func DefaultOptions() Options {
	return Options{
		Names:        []string{"blue", "green"},
		Nodes:        2,
		ReadyTimeout: 2 * time.Minute,
	}
}

// withDefaults fills zero fields from DefaultOptions.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if len(o.Names) == 0 {
		o.Names = d.Names
	}
	if o.Nodes == 0 {
		o.Nodes = d.Nodes
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = d.ReadyTimeout
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	seen := make(map[string]bool, len(o.Names))
	for _, n := range o.Names {
		if msgs := validation.IsDNS1123Label(n); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("cluster name %q: %s", n, msgs[0]))
		}
		if seen[n] {
			errs = append(errs, fmt.Errorf("cluster name %q: given twice", n))
		}
		seen[n] = true
	}
	if o.Nodes < 1 {
		errs = append(errs, fmt.Errorf("nodes: %d, want at least 1", o.Nodes))
	}
	if o.ControllerQPS < 0 {
		errs = append(errs, fmt.Errorf("controller QPS: %v is negative", o.ControllerQPS))
	}
	if o.ReadyTimeout < 0 {
		errs = append(errs, fmt.Errorf("ready timeout: %s is negative", o.ReadyTimeout))
	}
	return errors.Join(errs...)
}
