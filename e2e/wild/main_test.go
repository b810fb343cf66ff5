package wild

import (
	"os"
	"testing"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

var (
	clusters = localcluster.NewSuite(localcluster.DefaultOptions())
	tandem   e2etest.Binary
)

func TestMain(m *testing.M) {
	code := clusters.Run(m)
	tandem.Cleanup()
	os.Exit(code)
}
