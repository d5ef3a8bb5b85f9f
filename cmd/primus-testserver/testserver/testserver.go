// Package testserver holds the behaviour of the interop test server
// (cmd/primus-testserver, ../shared/docs/testserver-contract.md), shared with
// the tests that run it in-process. It lives beside its command because it
// imports every plugin and transformer: it is the highest layer of the
// module, not an API.
package testserver

import (
	"bytes"
	"net/http"
	"time"

	"github.com/go-primus/primus"
)

// Setup installs the contract's behaviour on srv: authorization and the
// echo/command handlers.
func Setup(srv *primus.Server) {
	srv.Authorize(func(r *http.Request) error {
		if r.URL.Query().Get("token") == "bad" {
			return &primus.HTTPError{Status: http.StatusUnauthorized, Message: "invalid token"}
		}
		return nil
	})
	srv.OnConnection(func(sp *primus.Spark) {
		sp.OnData(func(m *primus.Message) {
			if cmd, data, ok := command(m); ok {
				switch cmd {
				case "broadcast":
					_ = srv.Write(data)
				case "close":
					_ = sp.End()
				case "whoami":
					q := map[string]string{}
					for k, v := range sp.Query() {
						q[k] = v[0]
					}
					_ = sp.Write(map[string]any{"id": sp.ID(), "query": q})
				case "drop":
					_ = sp.Close()
				case "count":
					go count(sp, data)
				default:
					_ = sp.Write(m.Raw())
				}
				return
			}
			_ = sp.Write(m.Raw())
		})
	})
}

var cmdKey = []byte("cmd")

// command recognises {"cmd": name, "data": X}.
func command(m *primus.Message) (string, any, bool) {
	if m.Passthrough() || !bytes.Contains(m.Bytes(), cmdKey) {
		return "", nil, false
	}
	v, err := m.Value()
	if err != nil {
		return "", nil, false
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return "", nil, false
	}
	cmd, ok := obj["cmd"].(string)
	if !ok {
		return "", nil, false
	}
	switch cmd {
	case "broadcast", "close", "whoami", "drop":
		return cmd, obj["data"], true
	case "count":
		return cmd, obj["n"], true
	}
	return "", nil, false
}

// count writes {"seq":1} … {"seq":n} to sp, about one per millisecond
// (contract item 12), until done or the spark ends.
func count(sp *primus.Spark, n any) {
	total, ok := n.(float64)
	if !ok || total < 1 || total > 1e6 {
		return
	}
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for seq := 1; seq <= int(total); seq++ {
		if err := sp.Write(map[string]int{"seq": seq}); err != nil {
			return
		}
		select {
		case <-t.C:
		case <-sp.Done():
			return
		}
	}
}
