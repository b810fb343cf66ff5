// Package serve holds the end-to-end tests of `tandem serve`: they build the
// tandem binary, run it as a daemon (one process, or two replicas electing a
// leader) against two real local clusters (blue Active, green Standby) and a
// real git server on loopback holding a copy of examples/manifest, push
// commits, send signed and unsigned webhooks, signal and kill the daemon, and
// check what its /status and /metrics say and what the clusters hold
// (through client-go, Helm's release storage and the stock helm CLI).
//
// It contains tests only and must not be imported.
package serve
