// Command tandem keeps Active and Standby Kubernetes clusters in step with a
// git manifest repository of Helm charts.
//
// This package is the composition root: it owns flags, kubeconfig loading,
// output formats (text, JSON, Markdown) and exit codes, and it is the only
// place that builds concrete parts (renderers, cluster connections) and hands
// them to the reconciler. It holds no orchestration or policy of its own.
package main
