//go:build !linux

package bench

import (
	"os"
	"time"
)

// maxRSS is not measured off Linux (getrusage's unit differs by system).
func maxRSS(*os.ProcessState) int64 { return 0 }

// readMachineCPU is not read off Linux.
func readMachineCPU() machineCPU { return machineCPU{} }

// selfCPU is not read off Linux.
func selfCPU() time.Duration { return 0 }
