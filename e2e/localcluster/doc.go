// Package localcluster starts real Kubernetes control planes on the local machine,
// without containers, for tandem's tests and demo.
//
// Each cluster is its own etcd, kube-apiserver (client-certificate authentication,
// RBAC), kube-controller-manager and kube-scheduler, plus kwok, which plays the
// kubelet for fake nodes whose pods really go Running and Ready. Every cluster has
// its own certificate authority; one kubeconfig file holds a context per cluster,
// named after the cluster. The binaries come from the pinned tools modules under
// hack/tools (see EnsureTools).
//
// It owns: the processes it starts (each in its own process group, killed with the
// group on Stop and, on Linux, by the kernel when the starting process dies), their
// work directories, ports, certificates and kubeconfig files.
//
// Test packages use a Suite from TestMain (one set of clusters per test binary,
// started on first use, skipped under -short) or StartForTest for a private set.
//
// It is test and demo support: product packages (cmd, reconciler, manifest, render,
// clusters) must not import it, and it imports none of them.
package localcluster
