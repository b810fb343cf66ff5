//go:build tools

// Package tools pins the Kubernetes control-plane binaries that tandem's tests
// and demo run. It is a separate module so the product's go.mod never depends
// on k8s.io/kubernetes.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
