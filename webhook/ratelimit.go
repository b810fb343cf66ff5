package webhook

import (
	"container/list"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// sources is a token bucket per source, for at most max sources: when full,
// the source seen least recently is forgotten. The handler spends a token
// only on a failed authentication, so a bucket is a source's budget of
// failures. A forgotten source starts again with a full bucket, so a flood
// from more than max addresses can reset buckets; it still cannot grow
// memory, and every request it makes must pass the signature check, which no
// number of guesses breaks.
type sources struct {
	rate  rate.Limit
	burst int
	max   int

	mu    sync.Mutex // guards lru and byKey
	lru   *list.List // of *source; front = most recently seen
	byKey map[netip.Addr]*list.Element
}

type source struct {
	key netip.Addr
	lim *rate.Limiter
}

func newSources(r rate.Limit, burst, max int) *sources {
	return &sources{rate: r, burst: burst, max: max, lru: list.New(), byKey: map[netip.Addr]*list.Element{}}
}

// allow takes one token from key's bucket at now. If there is none it takes
// nothing and returns how long until there is one.
func (s *sources) allow(key netip.Addr, now time.Time) (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lim *rate.Limiter
	if e, ok := s.byKey[key]; ok {
		s.lru.MoveToFront(e)
		lim = e.Value.(*source).lim
	} else {
		if s.lru.Len() >= s.max {
			oldest := s.lru.Back()
			s.lru.Remove(oldest)
			delete(s.byKey, oldest.Value.(*source).key)
		}
		lim = rate.NewLimiter(s.rate, s.burst)
		s.byKey[key] = s.lru.PushFront(&source{key: key, lim: lim})
	}
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// exhausted reports whether key's bucket has no token at now, and if so how
// long until it has one. It takes nothing and remembers no new source: a
// source never charged has a full bucket.
func (s *sources) exhausted(key netip.Addr, now time.Time) (bool, time.Duration) {
	if s.rate == rate.Inf {
		return false, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byKey[key]
	if !ok {
		return false, 0
	}
	tokens := e.Value.(*source).lim.TokensAt(now)
	if tokens >= 1 {
		return false, 0
	}
	if s.rate <= 0 {
		return true, time.Second
	}
	// Rounded so float noise never adds a second to Retry-After.
	return true, time.Duration((1 - tokens) / float64(s.rate) * float64(time.Second)).Round(time.Microsecond)
}

// len is how many sources are remembered.
func (s *sources) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byKey)
}

// sourceOf is the rate-limit key of a request: the client IP from
// RemoteAddr (never X-Forwarded-For, which the client writes), IPv4-mapped
// addresses as IPv4, IPv6 by its /64. An unparsable RemoteAddr maps to the
// zero Addr, so all such requests share one bucket.
func sourceOf(remoteAddr string) netip.Addr {
	var a netip.Addr
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(remoteAddr); err != nil {
		return netip.Addr{}
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			a = p.Addr()
		}
	}
	return a
}
