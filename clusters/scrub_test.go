package clusters

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestScrubHidesSecretValues(t *testing.T) {
	s := secretValues{}
	s.addManifest("---\napiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata: {k: aHVudGVyMi1kYXRh}\nstringData: {p: hunter2-long, short: abc}\n" +
		"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: visible-value}\n")
	s.addObjects([]*unstructured.Unstructured{{Object: map[string]any{"apiVersion": "v1", "kind": "Secret", "stringData": map[string]any{"q": "hunter2-long-er"}}}})
	cause := fmt.Errorf("wrapped: %w", ErrImmutable)
	err := s.scrub(fmt.Errorf("refused hunter2-data (aHVudGVyMi1kYXRh), hunter2-long-er, %s, abc, visible-value: %w",
		"aHVudGVyMi1sb25n", cause))
	msg := err.Error()
	for _, v := range []string{"hunter2", "aHVudGVy"} {
		if strings.Contains(msg, v) {
			t.Errorf("%q left in %q", v, msg)
		}
	}
	if !strings.Contains(msg, "refused (hidden) ((hidden)), (hidden), (hidden), abc, visible-value") {
		t.Errorf("scrubbed text %q", msg)
	}
	if !errors.Is(err, ErrImmutable) {
		t.Error("scrubbing lost the error's sentinel")
	}
	plain := errors.New("nothing secret here")
	if s.scrub(plain) != plain {
		t.Error("an error without values must be returned as it is")
	}
}
