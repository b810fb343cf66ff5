// Package e2etest is shared support for tandem's end-to-end tests: it builds
// the tandem binary once per test binary, runs it against local clusters, and
// gives each test a private, git-initialised copy of the example manifest
// repository to edit. Test-only: nothing in the product imports it.
package e2etest
