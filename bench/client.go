package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// sourceAddrs is how many loopback source addresses the load tool spreads
// its connections over (127.0.0.1 to 127.0.0.250): each has its own range of
// ephemeral ports, so tens of thousands of connections, and the TIME_WAIT
// they leave behind, never exhaust one address's ports.
const sourceAddrs = 250

// dialer opens Primus WebSocket connections to one server.
type dialer struct {
	url    string
	client *http.Client
	next   atomic.Uint32
}

func newDialer(url string) *dialer {
	d := &dialer{url: url}
	nd := &net.Dialer{Timeout: 10 * time.Second}
	d.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ip := net.IPv4(127, 0, 0, byte(1+d.next.Add(1)%sourceAddrs))
			// A copy per call: LocalAddr differs between calls.
			nd := *nd
			nd.LocalAddr = &net.TCPAddr{IP: ip}
			return nd.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
		Proxy:             nil, // loopback only, whatever the environment says
	}}
	return d
}

func (d *dialer) close() { d.client.CloseIdleConnections() }

// dial opens one connection. Every connection reads its own messages (see
// conn.read), so it answers the server's heartbeats.
func (d *dialer) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, d.url, &websocket.DialOptions{HTTPClient: d.client})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(-1)
	return &conn{c: c}, nil
}

// dialAll opens n connections with up to 64 handshakes in flight. On error
// it closes those it opened.
func (d *dialer) dialAll(ctx context.Context, n int) ([]*conn, error) {
	conns := make([]*conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range min(n, 64) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				conns[i], errs[i] = d.dial(ctx)
			}
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		closeAll(conns)
		var first error
		for _, e := range errs {
			if e != nil {
				first = e
				break
			}
		}
		if first == nil {
			first = err
		}
		return nil, fmt.Errorf("bench: failed to open %d connections: %w", n, first)
	}
	return conns, nil
}

func closeAll(conns []*conn) {
	for _, c := range conns {
		if c != nil {
			_ = c.c.CloseNow()
		}
	}
}

// conn is one client connection. Reads happen in one goroutine at a time;
// writes may come from several (coder/websocket serialises them).
type conn struct {
	c   *websocket.Conn
	buf []byte // read buffer, reused across messages
}

var (
	pingPrefix = []byte(`"primus::ping::`)
	pongPrefix = []byte(`"primus::pong::`)
)

// write sends one data message.
func (c *conn) write(msg []byte) error {
	return c.c.Write(context.Background(), websocket.MessageText, msg)
}

// read returns the next data message, answering heartbeats on the way. The
// slice is valid until the next read.
func (c *conn) read() ([]byte, error) {
	for {
		_, r, err := c.c.Reader(context.Background())
		if err != nil {
			return nil, err
		}
		c.buf = c.buf[:0]
		for {
			if len(c.buf) == cap(c.buf) {
				c.buf = append(c.buf, 0)[:len(c.buf)]
			}
			n, err := r.Read(c.buf[len(c.buf):cap(c.buf)])
			c.buf = c.buf[:len(c.buf)+n]
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
		}
		if bytes.HasPrefix(c.buf, pingPrefix) {
			pong := append(append([]byte(nil), pongPrefix...), c.buf[len(pingPrefix):]...)
			if err := c.write(pong); err != nil {
				return nil, err
			}
			continue
		}
		return c.buf, nil
	}
}
