// Package tcpproxy is a loopback TCP proxy for tests whose connections can
// be cut as a failing network cuts them: all at once, the client's side
// only (the server notices late), or the whole link for a while. With
// several targets (SetTargetAt) it is a round-robin load balancer.
package tcpproxy

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy carries TCP from its own loopback address to a target.
type Proxy struct {
	ln net.Listener

	mu      sync.Mutex
	targets []string // "" for a target taken out
	next    int
	down    bool // Cut: refuse new connections until Restore
	pairs   map[*pair]struct{}
	wg      sync.WaitGroup
}

type pair struct{ client, server net.Conn }

// New starts a proxy to target; it is closed, connections and all, when the
// test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, targets: []string{target}, pairs: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.Kill(false)
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetTarget sends new connections to another target.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.targets = []string{target}
	p.mu.Unlock()
}

// SetTargetAt sets the i-th of the targets that new connections go to in
// turn ("" takes it out).
func (p *Proxy) SetTargetAt(i int, target string) {
	p.mu.Lock()
	for len(p.targets) <= i {
		p.targets = append(p.targets, "")
	}
	p.targets[i] = target
	p.mu.Unlock()
}

// pick is the target of a new connection, "" when there is none; p.mu is
// held.
func (p *Proxy) pick() string {
	for range p.targets {
		t := p.targets[p.next%len(p.targets)]
		p.next = (p.next + 1) % len(p.targets)
		if t != "" {
			return t
		}
	}
	return ""
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down, target := p.down, p.pick()
		p.mu.Unlock()
		if down || target == "" {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", target)
		if err != nil {
			_ = c.Close()
			continue
		}
		pr := &pair{c, s}
		p.mu.Lock()
		p.pairs[pr] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.pairs, pr)
			p.mu.Unlock()
		}
		go pipe(s, c)
		go pipe(c, s)
	}
}

// Kill cuts every connection with a reset, as a dying network does, and
// returns how many; clientOnly leaves the server's side open, as when the
// server has not noticed yet.
func (p *Proxy) Kill(clientOnly bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.pairs {
		if tc, ok := pr.client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = pr.client.Close()
		if !clientOnly {
			_ = pr.server.Close()
		}
	}
	return len(p.pairs)
}

// Cut kills every connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	p.Kill(false)
}

// Restore carries connections again after Cut.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
