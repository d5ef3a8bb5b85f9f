package engineio_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cmd/primus-testserver/testserver"
	"github.com/go-primus/primus/transport"
	"github.com/go-primus/primus/transport/engineio"
	"github.com/go-primus/primus/transport/sockjs"
	"github.com/go-primus/primus/transport/websocket"
)

// benchTransports are the rows of the comparison: Engine.IO over polling
// and over WebSocket, beside the other transformers, each with the Go
// client's dialer for it.
var benchTransports = []struct {
	name        string
	transformer func() transport.Transformer
	dialer      func() transport.Dialer
}{
	{"engineio-polling",
		func() transport.Transformer { return engineio.New(nil) },
		func() transport.Dialer { return engineio.New(&engineio.Options{Dial: engineio.DialPolling}) }},
	{"engineio-websocket",
		func() transport.Transformer { return engineio.New(nil) },
		func() transport.Dialer { return engineio.New(nil) }},
	{"websocket",
		func() transport.Transformer { return websocket.New() },
		func() transport.Dialer { return websocket.New() }},
	{"sockjs-websocket",
		func() transport.Transformer { return sockjs.New(nil) },
		func() transport.Dialer { return sockjs.New(nil) }},
}

// BenchmarkEcho measures echo throughput through a primus server (the test
// server's echo) and the Go client, one connection, JSON: each op is one
// message written by the client and its echo received. "pipelined" keeps
// 64 messages in flight (what a chatty client does; polling carries them in
// batches), "round-trip" one (each message waits for the previous echo).
// Messages per second are reported as msgs/s.
//
//	go test -run XXX -bench Echo ./transport/engineio
func BenchmarkEcho(b *testing.B) {
	for _, window := range []struct {
		name     string
		inFlight int
	}{{"pipelined", 64}, {"round-trip", 1}} {
		b.Run(window.name, func(b *testing.B) {
			for _, bt := range benchTransports {
				b.Run(bt.name, func(b *testing.B) {
					benchEcho(b, bt.transformer(), bt.dialer(), window.inFlight)
				})
			}
		})
	}
}

func benchEcho(b *testing.B, tr transport.Transformer, d transport.Dialer, inFlight int) {
	srv, err := primus.New(&primus.Options{Transformer: tr, PingInterval: -1, SendQueueBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	testserver.Setup(srv)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	echoes := make(chan struct{}, inFlight)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer hc.CloseIdleConnections()
	c, err := primus.Dial(ctx, ts.URL+"/primus", &primus.ClientOptions{
		Dialer:      d,
		HTTPClient:  hc,
		PingTimeout: -1,
		QueueSize:   1 << 20,
		OnData:      func(*primus.Message) { echoes <- struct{}{} },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := primus.Raw(`{"type":"message","seq":12345,"text":"hello, world"}`)
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for range b.N {
		if sent >= inFlight {
			<-echoes
		}
		if err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	for range min(sent, inFlight) {
		<-echoes
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
