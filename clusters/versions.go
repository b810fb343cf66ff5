package clusters

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// versionsVersion prefixes every Versions digest: a record made by another
// encoding is never taken for a match.
const versionsVersion = "v1:"

// ObjectRef names one object of a release for Versions: as rendered, so a
// namespaced object without a namespace is resolved as Live resolves it.
type ObjectRef struct {
	APIVersion, Kind, Namespace, Name string
}

// stamp is what Versions digests of one object: which object it is (its
// UID, so a deleted and re-created object differs) and which write of it
// (its resourceVersion, which every write moves, a status update included).
type stamp struct {
	uid, resourceVersion string
}

// Versions digests the UIDs and resourceVersions of the objects refs names,
// in order, read with one metadata-only List per resource type and
// namespace (shared by every caller of the snapshot, and far cheaper to
// decode than the objects themselves). ok is false when one of them does not
// exist. Equal digests mean that not one of the objects was written, by
// anyone, in between: see VersionsOf for the digest of objects in hand.
func (s *Snapshot) Versions(ctx context.Context, refs []ObjectRef) (digest string, ok bool, err error) {
	resolved, err := resolve(s.c.getter.mapper, refObjects(refs), "")
	if err != nil {
		return "", false, fmt.Errorf("cluster %q: %w", s.c.name, err)
	}
	stamps := make([]stamp, len(resolved))
	for i, o := range resolved {
		items, err := s.listMeta(ctx, o)
		if err != nil {
			return "", false, fmt.Errorf("cluster %q: %w", s.c.name, err)
		}
		st, found := items[o.name()]
		if !found {
			return "", false, nil
		}
		stamps[i] = st
	}
	d, ok := versionsDigest(resolved, stamps)
	return d, ok, nil
}

// VersionsOf digests live objects in hand (as listed, or as the API server
// answered a write) as Versions digests the same objects read from the
// cluster: live[i] is the object refs[i] names. ok is false when one is
// missing or carries no UID or resourceVersion, or a name differs.
func (s *Snapshot) VersionsOf(refs []ObjectRef, live []*unstructured.Unstructured) (digest string, ok bool) {
	if len(refs) != len(live) {
		return "", false
	}
	resolved, err := resolve(s.c.getter.mapper, refObjects(refs), "")
	if err != nil {
		return "", false
	}
	stamps := make([]stamp, len(live))
	for i, l := range live {
		if l == nil || l.GetName() != resolved[i].name() || l.GetNamespace() != resolved[i].namespace {
			return "", false
		}
		stamps[i] = stamp{uid: string(l.GetUID()), resourceVersion: l.GetResourceVersion()}
	}
	return versionsDigest(resolved, stamps)
}

func refObjects(refs []ObjectRef) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, len(refs))
	for i, r := range refs {
		u := &unstructured.Unstructured{Object: map[string]any{}}
		u.SetAPIVersion(r.APIVersion)
		u.SetKind(r.Kind)
		u.SetNamespace(r.Namespace)
		u.SetName(r.Name)
		out[i] = u
	}
	return out
}

// versionsDigest is the digest of resolved objects' stamps, each with the
// object's resource and name, so the same stamps of other objects differ.
func versionsDigest(objs []object, stamps []stamp) (string, bool) {
	if len(objs) == 0 || len(objs) != len(stamps) {
		return "", false
	}
	h := sha256.New()
	for i, o := range objs {
		st := stamps[i]
		if st.uid == "" || st.resourceVersion == "" {
			return "", false
		}
		// NUL never occurs in a resource, namespace, name, UID or
		// resourceVersion: the encoding is unambiguous.
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\n",
			o.gvr.Group, o.gvr.Resource, o.namespace, o.name(), st.uid, st.resourceVersion)
	}
	return versionsVersion + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18]), true
}

type metaList struct {
	items map[string]stamp
	err   error
	done  chan struct{}
}

// listMeta lists the metadata of one resource type in one namespace, once
// per snapshot.
func (s *Snapshot) listMeta(ctx context.Context, o object) (map[string]stamp, error) {
	g := liveGroup{o.gvr, o.namespace}
	s.mu.Lock()
	if s.metas == nil {
		s.metas = map[liveGroup]*metaList{}
	}
	l, ok := s.metas[g]
	if !ok {
		l = &metaList{done: make(chan struct{})}
		s.metas[g] = l
	}
	s.mu.Unlock()
	if ok {
		select {
		case <-l.done:
			return l.items, l.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer close(l.done)
	r := s.c.metadata.Resource(o.gvr)
	var list *metav1.PartialObjectMetadataList
	var err error
	if o.namespace == "" {
		list, err = r.List(ctx, metav1.ListOptions{})
	} else {
		list, err = r.Namespace(o.namespace).List(ctx, metav1.ListOptions{})
	}
	if err != nil && !apierrors.IsNotFound(err) {
		l.err = fmt.Errorf("list the metadata of %s in %q: %w", o.gvr.Resource, o.namespace, err)
		return nil, l.err
	}
	l.items = map[string]stamp{}
	if list != nil {
		for _, it := range list.Items {
			l.items[it.Name] = stamp{uid: string(it.UID), resourceVersion: it.ResourceVersion}
		}
	}
	return l.items, nil
}
