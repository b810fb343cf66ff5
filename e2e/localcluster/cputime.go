package localcluster

import (
	"errors"
	"fmt"
	"time"
)

// CPUTime is the processor time one component of one cluster has used.
type CPUTime struct {
	Cluster string `json:"cluster"`
	// Component is the binary: etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler or kwok.
	Component string `json:"component"`
	// CPU is user plus system time, summed over every process of the component
	// the cluster has started (an apiserver stopped and started again counts
	// both times).
	CPU time.Duration `json:"cpu"`
}

// CPUTimes returns the CPU time each component of each cluster has used since
// Start, clusters in Options order, components in start order. The figures
// only grow: sample before and after something to learn what the control
// planes spent on it. Running processes are read from /proc; off Linux the
// error wraps errors.ErrUnsupported.
func (e *Env) CPUTimes() ([]CPUTime, error) {
	var out []CPUTime
	var errs []error
	for _, name := range e.names {
		times, err := e.clusters[name].cpuTimes()
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %q: %w", name, err))
			continue
		}
		out = append(out, times...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("localcluster: CPU times: %w", err)
	}
	return out, nil
}

// cpuTimes sums the CPU time of every process the cluster has launched, by
// binary, in the order the binaries were first launched.
func (c *cluster) cpuTimes() ([]CPUTime, error) {
	c.mu.Lock()
	procs := append([]*process(nil), c.launched...)
	c.mu.Unlock()
	var out []CPUTime
	index := map[string]int{}
	for _, p := range procs {
		d, err := p.cpuTime()
		if err != nil {
			return nil, err
		}
		i, ok := index[p.bin]
		if !ok {
			i = len(out)
			index[p.bin] = i
			out = append(out, CPUTime{Cluster: c.name, Component: p.bin})
		}
		out[i].CPU += d
	}
	return out, nil
}

// cpuTime is the process's user plus system time: from /proc while it runs,
// from its rusage once it has been reaped.
func (p *process) cpuTime() (time.Duration, error) {
	if d, ok := p.reapedCPUTime(); ok {
		return d, nil
	}
	d, err := runningCPUTime(p.pid())
	if err != nil {
		// Reaped between the two looks: /proc no longer has it.
		if d, ok := p.reapedCPUTime(); ok {
			return d, nil
		}
		return 0, fmt.Errorf("%s: %w", p.name, err)
	}
	return d, nil
}

func (p *process) reapedCPUTime() (time.Duration, bool) {
	select {
	case <-p.done:
		// Wait set ProcessState before done was closed.
		ps := p.cmd.ProcessState
		return ps.UserTime() + ps.SystemTime(), true
	default:
		return 0, false
	}
}
