package webhook

import (
	"net/netip"
	"sync"
)

// slots bounds the requests that are reading or checking a body: at most
// perSource for any one source and at most cap(global) in all. A source at
// its own cap is refused before it touches the shared pool, so one client
// with many slow connections cannot take the slots every provider needs.
type slots struct {
	global    chan struct{}
	perSource int

	mu    sync.Mutex // guards bySrc
	bySrc map[netip.Addr]int
}

func newSlots(total, perSource int) *slots {
	return &slots{global: make(chan struct{}, total), perSource: perSource, bySrc: map[netip.Addr]int{}}
}

// take reserves a slot for src, or returns false without reserving any. On
// true the caller must call release(src) exactly once. A source's entry
// exists only while it holds a slot (or is about to learn the pool is
// full), so the map never outgrows the requests in progress.
func (s *slots) take(src netip.Addr) bool {
	s.mu.Lock()
	if s.bySrc[src] >= s.perSource {
		s.mu.Unlock()
		return false
	}
	s.bySrc[src]++
	s.mu.Unlock()
	select {
	case s.global <- struct{}{}:
		return true
	default:
		s.drop(src)
		return false
	}
}

func (s *slots) release(src netip.Addr) {
	<-s.global
	s.drop(src)
}

func (s *slots) drop(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bySrc[src]--; s.bySrc[src] <= 0 {
		delete(s.bySrc, src)
	}
}

// held is how many slots src holds and how many are held in all.
func (s *slots) held(src netip.Addr) (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bySrc[src], len(s.global)
}
