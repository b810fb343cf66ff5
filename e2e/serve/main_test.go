package serve_test

import (
	"os"
	"testing"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

// clusters are blue (Active) and green (Standby), shared by every test of
// this package. The tests run one at a time; each pushes a manifest of its
// own and waits for the daemon's first run to converge the clusters to it,
// so none depends on what an earlier one left. Tests of the examples
// manifest share its releases; the tests that need a slow release use a
// manifest ID and namespace of their own and delete the namespace when done.
var clusters = localcluster.NewSuite(localcluster.DefaultOptions())

// tandem is the binary under test, built once.
var tandem e2etest.Binary

func TestMain(m *testing.M) {
	code := clusters.Run(m)
	tandem.Cleanup()
	os.Exit(code)
}
