package guard_test

import (
	"os"
	"testing"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

// suite is blue and green, shared by this package's tests, which run one
// at a time in source order; each starts by converging the clusters.
var suite = localcluster.NewSuite(localcluster.DefaultOptions())

// tandem is the binary under test, built once.
var tandem e2etest.Binary

func TestMain(m *testing.M) {
	code := suite.Run(m)
	tandem.Cleanup()
	os.Exit(code)
}
