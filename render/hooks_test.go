package render

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Issue 11 item 5: Helm does not post-render hooks, so a release whose
// workloads the overlay scales down is installed without them (SkipHooks)
// unless it opted in; the result lists the hooks with the events they run on.
func TestSkipHooksWhereScaledDown(t *testing.T) {
	standby := Overlay{Release: "r", Cluster: "green", Role: RoleStandby, ScaleToZero: true, DNSPrefix: prefix}
	optIn := standby
	optIn.RunStandbyHooks = true
	keep := standby
	keep.ScaleToZero = false
	warming := standby // a switchover warming the Standby: workloads up
	warming.Knobs = &Knobs{ScaleDown: false, Weight: 0}
	cooling := Overlay{Release: "r", Cluster: "blue", Role: RoleActive, ScaleToZero: true, DNSPrefix: prefix,
		ActiveWeight: 100, Knobs: &Knobs{ScaleDown: true, SuspendCronJobs: true}}
	tests := []struct {
		name    string
		overlay Overlay
		skip    bool
	}{
		{"active", Overlay{Release: "r", Cluster: "blue", Role: RoleActive, ScaleToZero: true, DNSPrefix: prefix, ActiveWeight: 100}, false},
		{"standby scale-to-zero", standby, true},
		{"standby scale-to-zero, standbyHooks: run", optIn, false},
		{"standby keep", keep, false},
		{"switchover warming the standby", warming, false},
		{"switchover cooling the old active", cooling, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := testdataRequest(t, "hooks")
			req.Overlay = tt.overlay
			res, err := New(DefaultOptions()).Render(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if res.SkipHooks != tt.skip {
				t.Errorf("SkipHooks = %v, want %v", res.SkipHooks, tt.skip)
			}
			var got []string
			for _, o := range res.HookObjects {
				got = append(got, o.ID()+" "+o.Hook)
			}
			want := []string{"Pod ns/r-test test", "Job ns/r-migrate pre-install,pre-upgrade"} // Helm's hook order
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("hook objects (-want +got):\n%s", diff)
			}
		})
	}
}
