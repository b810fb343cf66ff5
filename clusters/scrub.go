package clusters

import (
	"bytes"
	"encoding/base64"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/postrender"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// minScrubbed is the shortest Secret value scrubbed from errors: shorter
// ones ("1", "on") occur in any message, and hiding them everywhere would
// make errors unreadable without protecting anything.
const minScrubbed = 4

// hiddenValue replaces a Secret value in an error's text.
const hiddenValue = "(hidden)"

// secretValues collects the values of the v1 Secrets among objs — each
// data value decoded and as written, each stringData value and its base64 —
// for scrubbing: the API server, an admission webhook or a
// ValidatingAdmissionPolicy's messageExpression may echo an object it
// refuses, Secret values included, in the error tandem reports.
type secretValues map[string]bool

func (s secretValues) add(v string) {
	if len(v) >= minScrubbed {
		s[v] = true
	}
}

func (s secretValues) addObjects(objs []*unstructured.Unstructured) {
	for _, u := range objs {
		if u == nil || u.GetKind() != "Secret" || u.GetAPIVersion() != "v1" {
			continue
		}
		data, _ := u.Object["data"].(map[string]any)
		for _, v := range data {
			enc, _ := v.(string)
			s.add(enc)
			if dec, err := base64.StdEncoding.DecodeString(enc); err == nil {
				s.add(string(dec))
			}
		}
		strData, _ := u.Object["stringData"].(map[string]any)
		for _, v := range strData {
			plain, _ := v.(string)
			s.add(plain)
			s.add(base64.StdEncoding.EncodeToString([]byte(plain)))
		}
	}
}

// addManifest adds the Secrets of a multi-document manifest; a manifest
// that does not parse adds what it can (nothing), as scrubbing must never
// fail the error it is cleaning.
func (s secretValues) addManifest(manifest string) {
	if !strings.Contains(manifest, "Secret") {
		return
	}
	objs, _ := parseManifest(manifest)
	s.addObjects(objs)
}

// addRelease adds the Secrets of a Helm release's manifest and hooks.
func (s secretValues) addRelease(r *release.Release) {
	if r == nil {
		return
	}
	s.addManifest(r.Manifest)
	for _, h := range r.Hooks {
		if h != nil {
			s.addManifest(h.Manifest)
		}
	}
}

// scrub returns err with every collected value hidden in its text. An error
// that holds none is returned as it is; otherwise the result keeps err in
// its chain (errors.Is and errors.As still see ErrImmutable and API status
// errors) but its text is the scrubbed one.
func (s secretValues) scrub(err error) error {
	if err == nil || len(s) == 0 {
		return err
	}
	msg := err.Error()
	// Longest first, so a value is not half-hidden by one it contains.
	vals := make([]string, 0, len(s))
	for v := range s {
		vals = append(vals, v)
	}
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	scrubbed := msg
	for _, v := range vals {
		scrubbed = strings.ReplaceAll(scrubbed, v, hiddenValue)
	}
	if scrubbed == msg {
		return err
	}
	return &scrubbedError{msg: scrubbed, err: err}
}

// scrubbedError is an error whose text had Secret values hidden.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }

// Unwrap keeps the error's type and sentinels reachable. Whoever prints an
// unwrapped cause instead of this error's own text could show a value: the
// reconciler reports err.Error() only.
func (e *scrubbedError) Unwrap() error { return e.err }

// capturing is a post-renderer that remembers the manifest Helm applies
// (the next post-renderer's output, or Helm's render without one), so that
// an install's error can be scrubbed of the Secrets it was applying.
type capturing struct {
	next     postrender.PostRenderer
	manifest string
}

var _ postrender.PostRenderer = (*capturing)(nil)

func (c *capturing) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	out := in
	if c.next != nil {
		var err error
		if out, err = c.next.Run(in); err != nil {
			return nil, err
		}
	}
	c.manifest = out.String()
	return out, nil
}
