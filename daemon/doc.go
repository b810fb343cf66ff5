// Package daemon is `tandem serve`'s loop: it follows a git ref, and when the
// commit moves (a poll every Interval, or a webhook's hint) or a resync is
// due, it runs the reconciler's pipeline on the new commit. At most one run
// is in flight and one pending, so a burst of pushes ends at the newest
// commit; a commit that does not load or render is reported and never
// applied, and the clusters stay at the last good commit. It serves
// /healthz, /readyz, /metrics and /status.
//
// It imports the reconciler and the manifest types, never cmd; the git
// source, the clusters and leader election come in from cmd as small
// interfaces and functions.
package daemon
