package clusters

import (
	"context"
	"fmt"
	"sync"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// identityNamespace is the namespace whose UID identifies a cluster: every
// cluster has it, it cannot be deleted, and its UID is set once by the API
// server when the cluster is created. Two kubeconfig contexts, or two
// server URLs, that reach one cluster see the same UID.
const identityNamespace = "kube-system"

// identityCache holds a Cluster's identity once read.
type identityCache struct {
	mu  sync.Mutex
	uid string
}

// Identity returns the cluster's stable identity, the UID of its
// kube-system namespace, so that one cluster reached under two names (a
// copy-pasted context, two contexts for one server) can be recognised
// before anything is written to it. It is read once per Cluster; a failed
// read is not cached.
func (c *Cluster) Identity(ctx context.Context) (string, error) {
	c.identity.mu.Lock()
	defer c.identity.mu.Unlock()
	if c.identity.uid != "" {
		return c.identity.uid, nil
	}
	ns, err := c.clientset.CoreV1().Namespaces().Get(ctx, identityNamespace, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("cluster %q: identity: %w", c.name, err)
	}
	if ns.UID == "" {
		return "", fmt.Errorf("cluster %q: identity: namespace %s has no uid", c.name, identityNamespace)
	}
	c.identity.uid = string(ns.UID)
	return c.identity.uid, nil
}

// Username is the user the API server authenticates tandem's requests to
// the cluster as (a SelfSubjectReview, which every authenticated user may
// make; impersonation in the kubeconfig included): the Standby guard lets
// only that user drop its markers. Read on every call, never cached: the
// user behind one credential can change while a Cluster lives (serve keeps
// its connections for the daemon's life; an exec plugin such as
// `aws eks get-token` assumes its role afresh for each token, and EKS names
// an access entry's user after the role session by default), and a guard
// naming the user of an hour ago would refuse tandem's own writes.
func (c *Cluster) Username(ctx context.Context) (string, error) {
	r, err := c.clientset.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("cluster %q: who am I (SelfSubjectReview): %w", c.name, err)
	}
	if r.Status.UserInfo.Username == "" {
		return "", fmt.Errorf("cluster %q: who am I (SelfSubjectReview): no username", c.name)
	}
	return r.Status.UserInfo.Username, nil
}
