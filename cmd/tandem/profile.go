package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"

	"github.com/spf13/cobra"
)

// profileFlags are hidden flags for finding where a run's time goes: a CPU
// profile (go tool pprof) and an execution trace (go tool trace; its
// -pprof=net|sync|syscall|sched views show what the goroutines waited on).
type profileFlags struct {
	cpu, trace string
}

func (f *profileFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.cpu, "cpuprofile", "", "write a CPU profile to this file")
	fl.StringVar(&f.trace, "trace", "", "write an execution trace to this file")
	_ = fl.MarkHidden("cpuprofile")
	_ = fl.MarkHidden("trace")
}

// start starts what was asked for and returns the function that stops it
// and closes the files.
func (f *profileFlags) start() (stop func() error, err error) {
	var stops []func() error
	stop = func() error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			errs = append(errs, stops[i]())
		}
		return errors.Join(errs...)
	}
	if f.cpu != "" {
		file, err := os.Create(f.cpu)
		if err != nil {
			return stop, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(file); err != nil {
			_ = file.Close()
			return stop, fmt.Errorf("--cpuprofile: %w", err)
		}
		stops = append(stops, func() error { pprof.StopCPUProfile(); return file.Close() })
	}
	if f.trace != "" {
		file, err := os.Create(f.trace)
		if err != nil {
			return stop, fmt.Errorf("--trace: %w", err)
		}
		if err := trace.Start(file); err != nil {
			_ = file.Close()
			return stop, fmt.Errorf("--trace: %w", err)
		}
		stops = append(stops, func() error { trace.Stop(); return file.Close() })
	}
	return stop, nil
}
