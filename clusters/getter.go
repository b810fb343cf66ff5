package clusters

import (
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// restGetter is the one RESTClientGetter a Cluster hands to every Helm
// action. Helm and kubectl's resource builder ask it for discovery and a
// RESTMapper on every operation; returning the same cached instances is
// what keeps N operations from doing N discoveries.
type restGetter struct {
	config    *rest.Config
	raw       clientcmd.ClientConfig
	discovery discovery.CachedDiscoveryInterface
	mapper    *refreshingMapper
}

var _ genericclioptions.RESTClientGetter = (*restGetter)(nil)

// ToRESTConfig returns a copy: callers (Helm, kubectl) mutate what they get.
func (g *restGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.config), nil }

func (g *restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	return g.discovery, nil
}

func (g *restGetter) ToRESTMapper() (meta.RESTMapper, error) { return g.mapper, nil }

// ToRawKubeConfigLoader is only consulted for a default namespace, which
// every Helm client built here sets explicitly.
func (g *restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig { return g.raw }

// refreshingMapper is a discovery-backed RESTMapper that rediscovers once
// when asked for a kind it does not know (a CRD installed since the cache was
// filled). The memory discovery cache reports itself fresh once filled, so
// client-go's deferred mapper alone would never see new kinds.
type refreshingMapper struct {
	mapper  meta.ResettableRESTMapper
	onReset func()

	mu  sync.Mutex
	gen uint64 // incremented on every reset, so concurrent misses reset once
}

var _ meta.ResettableRESTMapper = (*refreshingMapper)(nil)

func (m *refreshingMapper) generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// Reset drops the cached discovery; the next lookup rediscovers.
func (m *refreshingMapper) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resetLocked()
}

func (m *refreshingMapper) resetLocked() {
	m.gen++
	m.mapper.Reset()
	if m.onReset != nil {
		m.onReset()
	}
}

// retry reports whether a lookup that failed with err should be retried
// after a rediscovery, performing the rediscovery unless a concurrent lookup
// already did one since gen.
func (m *refreshingMapper) retry(gen uint64, err error) bool {
	if !meta.IsNoMatchError(err) {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen == gen {
		m.resetLocked()
	}
	return true
}

func (m *refreshingMapper) KindFor(r schema.GroupVersionResource) (schema.GroupVersionKind, error) {
	gen := m.generation()
	k, err := m.mapper.KindFor(r)
	if err != nil && m.retry(gen, err) {
		return m.mapper.KindFor(r)
	}
	return k, err
}

func (m *refreshingMapper) KindsFor(r schema.GroupVersionResource) ([]schema.GroupVersionKind, error) {
	gen := m.generation()
	k, err := m.mapper.KindsFor(r)
	if err != nil && m.retry(gen, err) {
		return m.mapper.KindsFor(r)
	}
	return k, err
}

func (m *refreshingMapper) ResourceFor(r schema.GroupVersionResource) (schema.GroupVersionResource, error) {
	gen := m.generation()
	out, err := m.mapper.ResourceFor(r)
	if err != nil && m.retry(gen, err) {
		return m.mapper.ResourceFor(r)
	}
	return out, err
}

func (m *refreshingMapper) ResourcesFor(r schema.GroupVersionResource) ([]schema.GroupVersionResource, error) {
	gen := m.generation()
	out, err := m.mapper.ResourcesFor(r)
	if err != nil && m.retry(gen, err) {
		return m.mapper.ResourcesFor(r)
	}
	return out, err
}

func (m *refreshingMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	gen := m.generation()
	out, err := m.mapper.RESTMapping(gk, versions...)
	if err != nil && m.retry(gen, err) {
		return m.mapper.RESTMapping(gk, versions...)
	}
	return out, err
}

func (m *refreshingMapper) RESTMappings(gk schema.GroupKind, versions ...string) ([]*meta.RESTMapping, error) {
	gen := m.generation()
	out, err := m.mapper.RESTMappings(gk, versions...)
	if err != nil && m.retry(gen, err) {
		return m.mapper.RESTMappings(gk, versions...)
	}
	return out, err
}

func (m *refreshingMapper) ResourceSingularizer(resource string) (string, error) {
	return m.mapper.ResourceSingularizer(resource)
}
