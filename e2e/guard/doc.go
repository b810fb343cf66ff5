// Package guard holds the end-to-end tests of the Standby guard: they build the
// tandem binary, reconcile a private git copy of examples/manifest (green running
// every release) onto two real local clusters (blue Active, green Standby), and
// drive the stock kubectl against them: `kubectl scale` and `kubectl patch` of
// what tandem holds at zero on green are refused with the guard's message, the
// same on blue passes, `--standby-guard warn` lets them through with a warning,
// `off` removes the guard, and a switchover to green and back runs with the
// guard on (the guard moves with the Standby role).
//
// It also checks the Helm chart in deploy/chart/tandem: installed with the stock
// helm CLI, its ServiceAccount's token (TokenRequest API) is enough for `tandem
// serve --leader-elect` to lead and reconcile, and not for a write outside its
// ClusterRole.
//
// It contains tests only and must not be imported.
package guard
