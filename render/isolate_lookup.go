package render

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
)

// lookupServer makes a worker's lookup calls on the request's provider. Helm
// gets a client and uses it at once, so only the latest is kept.
type lookupServer struct {
	provider LookupProvider
	client   dynamic.NamespaceableResourceInterface
	id       uint64
}

// serve returns an error only for a call that breaks the conversation; the
// provider's own errors go back to the worker in the reply.
func (l *lookupServer) serve(ctx context.Context, c *lookupCall) (*lookupReply, error) {
	if l.provider == nil {
		return nil, errors.New("lookup call for a render without a lookup provider")
	}
	if c.op == opClient {
		client, namespaced, err := l.provider.GetClientFor(c.apiVersion, c.kind)
		if err != nil {
			return &lookupReply{err: asRemoteError(err)}, nil
		}
		l.id++
		l.client = client
		return &lookupReply{client: l.id, namespaced: namespaced}, nil
	}
	if l.client == nil || c.client != l.id {
		return nil, fmt.Errorf("lookup call on client %d, not the latest (%d)", c.client, l.id)
	}
	var ri dynamic.ResourceInterface = l.client
	if c.hasNamespace {
		ri = l.client.Namespace(c.namespace)
	}
	if c.op == opGet {
		obj, err := ri.Get(ctx, c.name, metav1.GetOptions{})
		if err != nil {
			return &lookupReply{err: asRemoteError(err)}, nil
		}
		if obj == nil {
			return &lookupReply{}, nil
		}
		return &lookupReply{found: true, object: obj.Object}, nil
	}
	list, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		return &lookupReply{err: asRemoteError(err)}, nil
	}
	if list == nil {
		return &lookupReply{}, nil
	}
	rep := &lookupReply{found: true, object: list.Object}
	if list.Items != nil {
		rep.items = make([]map[string]any, len(list.Items))
		for i := range list.Items {
			rep.items[i] = list.Items[i].Object
		}
	}
	return rep, nil
}
