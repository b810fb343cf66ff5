// Package drift holds end-to-end tests of tandem's drift and change reports:
// the built binary's `tandem diff` (live and --against, in text, JSON and
// Markdown), `tandem reconcile` reporting and correcting drift, and `tandem
// comment` keeping one sticky pull-request comment.
//
// The live tests edit two local clusters (blue Active, green Standby) by hand,
// as an operator would with kubectl, and check what tandem reports; the
// --against and comment tests need no cluster. Everything is in _test.go
// files: nothing imports this package, and it imports no product package —
// the tests see tandem only as a binary and its documented JSON.
package drift
