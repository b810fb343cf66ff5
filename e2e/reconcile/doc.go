// Package reconcile holds the end-to-end tests of `tandem reconcile`: they build
// the tandem binary, run it against two real local clusters (blue Active, green
// Standby) with private git copies of examples/manifest, and check its exit codes,
// its JSON report and progress lines, and what the clusters hold afterwards
// (through client-go and the stock helm CLI).
//
// It contains tests only and must not be imported.
package reconcile
