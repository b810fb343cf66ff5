package localcluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// Ports come from below Linux's default ephemeral range (32768-60999): there no
// outgoing connection can take a port between the check and the process binding
// it. What remains, another process picking the same port at the same moment, is
// handled by retrying a start that fails with "address already in use".
const (
	portMin = 20000
	portMax = 32000
)

// ports hands out free loopback ports, never the same one twice to one Env.
type ports struct {
	mu   sync.Mutex
	used map[int]bool
}

func (p *ports) free() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used == nil {
		p.used = make(map[int]bool)
	}
	for range 100 {
		port := portMin + rand.IntN(portMax-portMin)
		if p.used[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		_ = l.Close()
		p.used[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free loopback port found in %d-%d", portMin, portMax)
}
