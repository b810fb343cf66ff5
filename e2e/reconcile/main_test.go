package reconcile_test

import (
	"os"
	"testing"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

// clusters are blue (Active) and green (Standby), shared by every test of this
// package. The tests run one at a time, in source order: TestReconcileLifecycle
// (lifecycle_test.go) first, then the tests that break things on purpose
// (recovery_test.go), each of which starts by converging the clusters to the
// example manifest, so they do not depend on what ran before them.
var clusters = localcluster.NewSuite(localcluster.DefaultOptions())

// tandem is the binary under test, built once.
var tandem e2etest.Binary

func TestMain(m *testing.M) {
	code := clusters.Run(m)
	tandem.Cleanup()
	os.Exit(code)
}
