package webhook

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestSourceOf(t *testing.T) {
	tests := []struct {
		remoteAddr string
		want       string
	}{
		{"192.0.2.1:1234", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:1234", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::"},
		{"[2001:db8:1:3::1]:443", "2001:db8:1:3::"},
		{"[fe80::1%eth0]:80", "fe80::"},
		{"192.0.2.7", "192.0.2.7"},
		{"not an address", "invalid IP"},
		{"", "invalid IP"},
	}
	for _, tt := range tests {
		if got := sourceOf(tt.remoteAddr).String(); got != tt.want {
			t.Errorf("sourceOf(%q) = %s, want %s", tt.remoteAddr, got, tt.want)
		}
	}
}

// TestSourcesEvictLeastRecent: when full, the source seen least recently is
// forgotten (and starts again with a full bucket); a busy one is kept.
func TestSourcesEvictLeastRecent(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSources(rate.Limit(0.001), 1, 2)
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	allow := func(k netip.Addr) bool { ok, _ := s.allow(k, now); return ok }

	if !allow(a) || !allow(b) {
		t.Fatal("first requests of a and b refused")
	}
	if allow(a) { // a is now the most recent, and out of tokens
		t.Fatal("a allowed twice with burst 1")
	}
	if !allow(c) { // evicts b, the least recent
		t.Fatal("c refused")
	}
	if s.len() != 2 {
		t.Fatalf("len = %d, want 2", s.len())
	}
	if allow(a) {
		t.Error("a was evicted: its empty bucket should have been kept")
	}
	if !allow(b) {
		t.Error("b should have been forgotten and start with a full bucket")
	}
}

func TestSourcesRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSources(rate.Limit(4), 1, 10)
	k := netip.MustParseAddr("192.0.2.1")
	if ok, _ := s.allow(k, now); !ok {
		t.Fatal("first refused")
	}
	ok, wait := s.allow(k, now)
	if ok || wait != 250*time.Millisecond {
		t.Fatalf("second = %v, %v; want refused, 250ms", ok, wait)
	}
	// A refusal takes no token: 250ms later one is there.
	if ok, _ := s.allow(k, now.Add(250*time.Millisecond)); !ok {
		t.Error("refused after the wait it announced")
	}
}
