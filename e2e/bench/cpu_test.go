package bench

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

// cpuAccount says where the CPU went while one side ran, next to the side's
// own client CPU (measurement.cpu): the control planes' processes by
// component, summed over both clusters; the benchmark process's own (the
// counting proxies, mostly); and the machine's busy and total CPU time over
// the same interval, every other job on it included. Off Linux none of it is
// read: components is empty and the durations zero.
type cpuAccount struct {
	components   []componentCPU // in the order localcluster.Env.CPUTimes names them
	harness      time.Duration  // this test binary: the proxies, the setup clients
	machineBusy  time.Duration  // CPU time the whole machine spent busy
	machineTotal time.Duration  // CPU time it had: wall time × CPUs
}

type componentCPU struct {
	name string
	cpu  time.Duration
}

// cpuSample is the counters read at one moment.
type cpuSample struct {
	controlPlanes []localcluster.CPUTime // nil when not read
	harness       time.Duration          // this process's CPU time so far
	machine       machineCPU
}

// machineCPU is the machine's CPU time since boot, busy and idle.
type machineCPU struct {
	busy, idle time.Duration
	ok         bool
}

// cpuSample reads the control planes' and the machine's CPU counters.
func (h *harness) cpuSample(tb testing.TB) cpuSample {
	tb.Helper()
	times, err := h.env.CPUTimes()
	if err != nil && !errors.Is(err, errors.ErrUnsupported) {
		tb.Fatal(err)
	}
	return cpuSample{controlPlanes: times, harness: selfCPU(), machine: readMachineCPU()}
}

// since is what was spent between an earlier sample and s.
func (s cpuSample) since(before cpuSample) cpuAccount {
	var a cpuAccount
	if s.controlPlanes != nil && before.controlPlanes != nil {
		was := map[string]time.Duration{}
		for _, t := range before.controlPlanes {
			was[t.Cluster+"/"+t.Component] += t.CPU
		}
		for _, t := range s.controlPlanes {
			a = a.addComponent(t.Component, t.CPU-was[t.Cluster+"/"+t.Component])
		}
	}
	a.harness = s.harness - before.harness
	if s.machine.ok && before.machine.ok {
		a.machineBusy = s.machine.busy - before.machine.busy
		a.machineTotal = a.machineBusy + s.machine.idle - before.machine.idle
	}
	return a
}

func (a cpuAccount) addComponent(name string, d time.Duration) cpuAccount {
	a.components = slices.Clone(a.components)
	for i := range a.components {
		if a.components[i].name == name {
			a.components[i].cpu += d
			return a
		}
	}
	a.components = append(a.components, componentCPU{name, d})
	return a
}

func (a cpuAccount) add(o cpuAccount) cpuAccount {
	for _, c := range o.components {
		a = a.addComponent(c.name, c.cpu)
	}
	a.harness += o.harness
	a.machineBusy += o.machineBusy
	a.machineTotal += o.machineTotal
	return a
}

func (a cpuAccount) div(n int) cpuAccount {
	a.components = slices.Clone(a.components)
	for i := range a.components {
		a.components[i].cpu /= time.Duration(n)
	}
	a.harness /= time.Duration(n)
	a.machineBusy /= time.Duration(n)
	a.machineTotal /= time.Duration(n)
	return a
}

// controlPlanes is the components' sum; ok is false when they were not read.
func (a cpuAccount) controlPlanes() (time.Duration, bool) {
	var sum time.Duration
	for _, c := range a.components {
		sum += c.cpu
	}
	return sum, len(a.components) > 0
}

func compareDurations(x, y time.Duration) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// String is one line: the control planes' components, largest first, the
// harness, then the machine and what of it neither the side (client, its own
// CPU) nor the control planes nor the harness used: other jobs.
func (a cpuAccount) String(client time.Duration) string {
	var parts []string
	cp, ok := a.controlPlanes()
	if ok {
		byCPU := slices.Clone(a.components)
		slices.SortStableFunc(byCPU, func(x, y componentCPU) int { return compareDurations(y.cpu, x.cpu) })
		var each []string
		for _, c := range byCPU {
			each = append(each, fmt.Sprintf("%s %.1f s", c.name, c.cpu.Seconds()))
		}
		parts = append(parts, fmt.Sprintf("control planes %.1f s (%s)", cp.Seconds(), strings.Join(each, ", ")))
	} else {
		parts = append(parts, "control planes not measured")
	}
	if a.harness > 0 {
		parts = append(parts, fmt.Sprintf("benchmark process (proxies) %.1f s", a.harness.Seconds()))
	}
	if a.machineTotal > 0 {
		m := fmt.Sprintf("machine busy %.1f of %.1f CPU-s (%.0f%%)", a.machineBusy.Seconds(), a.machineTotal.Seconds(),
			100*a.machineBusy.Seconds()/a.machineTotal.Seconds())
		if ok {
			m += fmt.Sprintf(", other jobs %.1f s", (a.machineBusy - client - cp - a.harness).Seconds())
		}
		parts = append(parts, m)
	}
	return strings.Join(parts, "; ")
}

func TestCPUAccount(t *testing.T) {
	s := time.Second
	before := cpuSample{
		controlPlanes: []localcluster.CPUTime{
			{Cluster: "blue", Component: "etcd", CPU: 1 * s}, {Cluster: "blue", Component: "kwok", CPU: 2 * s},
			{Cluster: "green", Component: "etcd", CPU: 3 * s}, {Cluster: "green", Component: "kwok", CPU: 4 * s},
		},
		harness: 10 * s,
		machine: machineCPU{busy: 100 * s, idle: 50 * s, ok: true},
	}
	after := cpuSample{
		controlPlanes: []localcluster.CPUTime{
			{Cluster: "blue", Component: "etcd", CPU: 2 * s}, {Cluster: "blue", Component: "kwok", CPU: 7 * s},
			{Cluster: "green", Component: "etcd", CPU: 5 * s}, {Cluster: "green", Component: "kwok", CPU: 4 * s},
		},
		harness: 11 * s,
		machine: machineCPU{busy: 115 * s, idle: 55 * s, ok: true},
	}
	a := after.since(before)
	want := cpuAccount{components: []componentCPU{{"etcd", 3 * s}, {"kwok", 5 * s}}, harness: 1 * s, machineBusy: 15 * s, machineTotal: 20 * s}
	if diff := cmp.Diff(want, a, cmp.AllowUnexported(cpuAccount{}, componentCPU{})); diff != "" {
		t.Errorf("since (-want +got):\n%s", diff)
	}
	if total, ok := a.controlPlanes(); !ok || total != 8*s {
		t.Errorf("controlPlanes = %s, %v; want 8s, true", total, ok)
	}
	if got, want := a.String(2*s), "control planes 8.0 s (kwok 5.0 s, etcd 3.0 s); benchmark process (proxies) 1.0 s; machine busy 15.0 of 20.0 CPU-s (75%), other jobs 4.0 s"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	// The mean of two runs, the second without machine figures.
	mean := a.add(cpuSample{controlPlanes: after.controlPlanes}.since(cpuSample{controlPlanes: before.controlPlanes})).div(2)
	if got, want := mean.String(2*s), "control planes 8.0 s (kwok 5.0 s, etcd 3.0 s); benchmark process (proxies) 0.5 s; machine busy 7.5 of 10.0 CPU-s (75%), other jobs -3.0 s"; got != want {
		t.Errorf("mean String = %q, want %q", got, want)
	}
	if a.components[0].cpu != 3*s {
		t.Errorf("add changed its receiver: etcd %s", a.components[0].cpu)
	}
	if _, ok := (cpuAccount{}).controlPlanes(); ok {
		t.Error("an empty account says it measured the control planes")
	}
	if got, want := (cpuAccount{}).String(0), "control planes not measured"; got != want {
		t.Errorf("empty String = %q, want %q", got, want)
	}
}
