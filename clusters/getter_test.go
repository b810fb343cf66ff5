package clusters

import (
	"sync/atomic"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// learningMapper knows Widget only after a Reset: a CRD installed since
// discovery was cached.
type learningMapper struct {
	meta.ResettableRESTMapper
	resets atomic.Int32
}

func (m *learningMapper) Reset() { m.resets.Add(1) }

func (m *learningMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	if gk.Kind == "Widget" && m.resets.Load() > 0 {
		return &meta.RESTMapping{Resource: schema.GroupVersionResource{Group: gk.Group, Version: "v1", Resource: "widgets"}}, nil
	}
	return nil, &meta.NoKindMatchError{GroupKind: gk, SearchedVersions: versions}
}

func TestRefreshingMapperRediscoversOnMiss(t *testing.T) {
	inner := &learningMapper{}
	dropped := 0
	m := &refreshingMapper{mapper: inner, onReset: func() { dropped++ }}

	got, err := m.RESTMapping(schema.GroupKind{Group: "example.com", Kind: "Widget"}, "v1")
	if err != nil || got.Resource.Resource != "widgets" {
		t.Fatalf("RESTMapping(new kind) = %v, %v; want widgets after one rediscovery", got, err)
	}
	if inner.resets.Load() != 1 || dropped != 1 {
		t.Errorf("resets = %d, capability drops = %d; want 1 and 1", inner.resets.Load(), dropped)
	}

	_, err = m.RESTMapping(schema.GroupKind{Group: "example.com", Kind: "Gadget"}, "v1")
	if !meta.IsNoMatchError(err) {
		t.Errorf("RESTMapping(unknown kind) error = %v, want no match", err)
	}
	if inner.resets.Load() != 2 {
		t.Errorf("resets = %d after an unknown kind, want exactly one more (2)", inner.resets.Load())
	}
}

func TestRefreshingMapperResetsOncePerGeneration(t *testing.T) {
	inner := &learningMapper{}
	m := &refreshingMapper{mapper: inner}
	gen := m.generation()
	m.Reset() // a concurrent lookup rediscovered meanwhile
	if !m.retry(gen, &meta.NoKindMatchError{}) {
		t.Fatal("retry(no match) = false")
	}
	if inner.resets.Load() != 1 {
		t.Errorf("resets = %d, want 1: a stale miss must not rediscover again", inner.resets.Load())
	}
}
