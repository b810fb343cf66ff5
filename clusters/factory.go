package clusters

import (
	"errors"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilversion "k8s.io/apimachinery/pkg/util/version"
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
	// serverValidates reports whether the API server validates an object
	// of this kind itself, as kubectl would learn from the OpenAPI
	// documents (see Cluster.serverValidatesFields); nil: never assumed.
	serverValidates func(schema.GroupVersionKind) bool

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
	if directive != metav1.FieldValidationIgnore && f.serverValidates != nil {
		v = &knownKindsSchema{
			known:   validation.NewParamVerifyingSchema(validation.NullSchema{}, knownKinds(f.serverValidates), directive),
			kubectl: v,
		}
	}
	if f.validators == nil {
		f.validators = map[string]validation.Schema{}
	}
	f.validators[directive] = v
	return v, nil
}

// knownKindsSchema is kubectl's validator, answering for the kinds the
// server is known to validate itself without reading the OpenAPI
// documents. For such a kind kubectl's validator (a ParamVerifyingSchema)
// parses the object, checks that it names an apiVersion and a kind, asks
// its verifier whether the server takes the fieldValidation parameter —
// fetching and parsing the group's OpenAPI v3 document, about 0.4 CPU
// seconds per cluster and run for core/v1, apps/v1 and networking/v1 — and,
// the server taking it, validates nothing more: the server does. known is
// that same ParamVerifyingSchema, with a verifier that answers from
// discovery instead; every other object (a List, a kind of a CRD or of an
// aggregated API, a kind the server does not serve or cannot patch, any
// kind on a server older than 1.27) goes to kubectl's validator as before.
// So a bad object is refused, or let through to the server, exactly as
// without it (TestBadManifestOutcomes).
//
// "Kubernetes' own" is by name (group, version, kind in client-go's
// scheme), not by who serves it: a CRD that serves a built-in kind at a
// version the server no longer serves itself (networking.k8s.io/v1beta1
// Ingress, under the api-approved annotation) is taken as known. kubectl's
// verifier says the same of it (the CRD's OpenAPI lists fieldValidation;
// checked by hand on 1.37). An APIService pointing such a version at an
// aggregated server whose OpenAPI does not list fieldValidation would
// differ: kubectl would check unknown fields on the client, this lets the
// server drop them. Either needs cluster-admin.
type knownKindsSchema struct {
	known   validation.Schema
	kubectl validation.Schema
}

func (s *knownKindsSchema) ValidateBytes(data []byte) error {
	err := s.known.ValidateBytes(data)
	if errors.Is(err, errAskKubectl) {
		return s.kubectl.ValidateBytes(data)
	}
	return err
}

// errAskKubectl is knownKinds' answer for a kind it does not know: the
// object goes to kubectl's validator.
var errAskKubectl = errors.New("not a kind the server is known to validate")

// knownKinds is a resource.Verifier: nil (the server takes the
// fieldValidation parameter, and validates) for the kinds the function
// reports true for, errAskKubectl for any other.
type knownKinds func(schema.GroupVersionKind) bool

func (k knownKinds) HasSupport(gvk schema.GroupVersionKind) error {
	if gvk == (schema.GroupVersionKind{Version: "v1", Kind: "List"}) || !k(gvk) {
		return errAskKubectl
	}
	return nil
}

// fieldValidationGA is the first Kubernetes version whose API server
// always validates fields itself (ServerSideFieldValidation is GA and
// cannot be turned off), and lists the fieldValidation parameter on every
// PATCH of its OpenAPI documents.
var fieldValidationGA = utilversion.MustParseGeneric("1.27")

// serverValidatesFields reports whether kubectl's validator would find, in
// the OpenAPI v3 document of gvk's group, that the server takes the
// fieldValidation parameter for it — so that it validates nothing on the
// client — knowing it without that document: gvk is a kind of Kubernetes'
// own API (client-go's scheme), served by this API server with a patch
// verb (discovery, already cached), and the server is 1.27 or later (the
// version it reported with its capabilities, not fetched here). Anything
// it cannot tell is false. TestKnownKindsAgreeWithKubectl checks the
// answers against kubectl's own on a real API server.
func (c *Cluster) serverValidatesFields(gvk schema.GroupVersionKind) bool {
	if !c.scheme.Recognizes(gvk) {
		return false // a CRD's or an aggregated API's own kind, or none
	}
	c.capsMu.Lock()
	caps := c.caps
	c.capsMu.Unlock()
	if caps == nil {
		return false
	}
	v, err := utilversion.ParseGeneric(caps.KubeVersion.Version)
	if err != nil || !v.AtLeast(fieldValidationGA) {
		return false
	}
	list, err := c.getter.discovery.ServerResourcesForGroupVersion(gvk.GroupVersion().String())
	if err != nil || list == nil {
		return false
	}
	for _, r := range list.APIResources {
		if r.Kind == gvk.Kind && !strings.Contains(r.Name, "/") && slices.Contains(r.Verbs, "patch") {
			return true
		}
	}
	return false
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
