// Package switchover holds the end-to-end tests of the switchover: they build
// the tandem binary, run it against two real local clusters (blue, green) with a
// private git copy of examples/manifest (green running every release, a short
// dns.drainSeconds), flip the roles with `tandem switchover --to`, run `tandem
// reconcile`, and sample the live objects of both clusters every 100 ms for the
// whole switchover: for every DNS name some weight is up, a cluster with a weight
// up has its workloads available, no CronJob is unsuspended on both clusters.
//
// Besides both directions, they kill -9 a run in each of the five phases and
// resume it, block phase 1 on an unhealthy target, stop the source's API server
// (the emergency path) and bring it back, check `tandem status`'s live columns,
// and run `tandem drill` with a reconcile waiting on its locks.
//
// It contains tests only and must not be imported.
package switchover
