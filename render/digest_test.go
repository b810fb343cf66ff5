package render

import (
	"context"
	"fmt"
	"testing"
)

// TestDigestUnchangedForChartsWithoutCapabilitiesOrLookup pins the digests of
// the example charts, none of which reads .Capabilities or calls lookup, to
// the values the render before per-cluster capabilities and lookup (client-
// only action.Install, Helm's v1.20.0 defaults) produced: rendering with
// tandem's own recipe and the new default Kubernetes version must not make
// every release look changed. Neither may rendering a release as an
// upgrade: Request.Upgrade enters no digest, and these charts render the
// same objects for an install and an upgrade. One change is deliberate:
// orders-worker's standby digest moved when the overlay began marking the
// CronJobs it suspends (AnnotationHeld, for the Standby guard): such
// releases are upgraded once on Standby clusters after that tandem arrives.
func TestDigestUnchangedForChartsWithoutCapabilitiesOrLookup(t *testing.T) {
	tests := []struct {
		chart  string
		role   Role
		digest string
	}{
		{"example", "active", "598ab18354f83d021bb2d6b71646a93fc0939066"},
		{"example", "standby", "0a0c397afcc65f60e042dfc8b73781cf3055208f"},
		{"storefront", "active", "6b5f6ad1b9694ae15982666d5607f7ce7e5f5005"},
		{"storefront", "standby", "92bcc3f19e6a81780cd0aa97ef4efbdf46e058d5"},
		{"orders-worker", "active", "d08696fb5898b5515f0b17a17d821379784c457d"},
		{"orders-worker", "standby", "7857485694335d3a6da00af6652ffe386b2b47c2"},
		{"cache", "active", "6c2ec25fe66b63dec492c0259bccc68dc5d3c2ad"},
		{"cache", "standby", "f4c70f14bf3369da032c727e806a4afcc4928112"},
		{"platform", "active", "40bf3c401bbbc9fc903df21ba8f69bfdce6b5aa9"},
		{"platform", "standby", "e918375fa762d151913e8d4d6ebc135a99af67e1"},
	}
	r := New(DefaultOptions())
	for _, tt := range tests {
		for _, upgrade := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/%s/upgrade=%t", tt.chart, tt.role, upgrade), func(t *testing.T) {
				res, err := r.Render(context.Background(), Request{
					Cluster: "c1", Release: "rel", Namespace: "shop", Chart: ChartSource{Dir: exampleDir(t, tt.chart)},
					Values:  []ValuesLayer{{Source: "set", Set: map[string]any{"image.tag": "9.9.9"}}},
					Overlay: Overlay{Release: "rel", Cluster: "c1", Role: tt.role, ScaleToZero: true, DNSPrefix: prefix, ActiveWeight: 100},
					Upgrade: upgrade,
				})
				if err != nil {
					t.Fatal(err)
				}
				if res.Digest != tt.digest {
					t.Errorf("digest %s, want %s", res.Digest, tt.digest)
				}
				if res.UsedLookup {
					t.Error("UsedLookup set for a chart that does not call lookup")
				}
			})
		}
	}
}
