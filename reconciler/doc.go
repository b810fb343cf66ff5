// Package reconciler is tandem's orchestration and policy: it turns a loaded
// manifest into render requests per cluster (a pure, table-tested conversion),
// plans what each cluster needs (install, upgrade, unchanged, prune, recover),
// applies plans to every cluster in parallel in waves with health gates, and
// returns what happened as data (Report). It never prints and reads no flags.
//
// reconciler imports the three leaves (manifest, render, clusters) and converts
// between their types; the leaves never import each other or this package. It
// declares the small interfaces it consumes (Target for a cluster) so tests can
// inject faults.
package reconciler
