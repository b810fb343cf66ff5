package reconciler

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine running: no
// goroutine of a run may outlive it, let alone write to a cluster after
// Reconcile returned (item 11 of the safety issue).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
