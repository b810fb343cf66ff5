package clusters

import (
	"sync"

	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/validation"
)

// validatorCache is kubectl's factory with the manifest validator Helm's
// Build asks for built once per validation directive and kept until the
// cluster's discovery is reset (a CRD installed, a kind not found).
// kubectl's own Validator builds a new one on every call — with a new
// OpenAPI v3 client whose documents are fetched and parsed again just to
// learn that the server validates fields itself — which was three quarters
// of a cold install's CPU (50 releases: 16.8 of 22.7 CPU seconds).
//
// The validator is safe to share: its verifier caches under a lock, and
// the OpenAPI v3 client it holds is a memory cache with its own.
type validatorCache struct {
	cmdutil.Factory

	mu         sync.Mutex
	validators map[string]validation.Schema // by directive; guarded by mu
}

// Validator implements cmdutil.Factory.
func (f *validatorCache) Validator(directive string) (validation.Schema, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.validators[directive]; ok {
		return v, nil
	}
	v, err := f.Factory.Validator(directive)
	if err != nil {
		return nil, err
	}
	v = &serialSchema{next: v}
	if f.validators == nil {
		f.validators = map[string]validation.Schema{}
	}
	f.validators[directive] = v
	return v, nil
}

// serialSchema validates one manifest object at a time. Once the verifier
// knows a kind a validation is a map lookup; but concurrent first calls for
// one kind would each fetch and parse its group's OpenAPI document (at 32
// installs at once, half a gigabyte).
type serialSchema struct {
	mu   sync.Mutex
	next validation.Schema
}

func (s *serialSchema) ValidateBytes(data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next.ValidateBytes(data)
}

// reset forgets the validators: the API's kinds may have changed, and a
// verifier remembers each kind's answer, "not found" included.
func (f *validatorCache) reset() {
	f.mu.Lock()
	f.validators = nil
	f.mu.Unlock()
}
