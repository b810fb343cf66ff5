// Package clusters is everything in tandem that talks to a kube-apiserver.
//
// It owns, per cluster: the client configuration (one shared
// RESTClientGetter with cached discovery, RESTMapper, OpenAPI documents and
// Helm capabilities, so N operations do not refetch them N times), Helm's
// release side (install, upgrade, rollback, uninstall, history, recovering
// releases stuck in pending-*, all through Helm actions and Helm's Secret
// storage driver so stock `helm ls/history/rollback` keep working), health
// waiting with kstatus, the per-cluster writer lock (a Lease) and the state
// record (a ConfigMap) that `tandem status` reads.
//
// The reconciler hands it a loaded chart, values and the Active/Standby
// overlay as a Helm post-renderer; clusters never renders charts itself
// beyond what a Helm install does.
//
// clusters must not import other tandem packages (manifest, render,
// reconciler). Helm's chart/template side lives in render; Helm actions live
// here and nowhere else.
package clusters
