package crossnode_test

import (
	"strings"
	"testing"

	"github.com/go-primus/primus/cluster/internal/clustertest"
	"github.com/go-primus/primus/cluster/nats"
	"github.com/go-primus/primus/cluster/redis"
	"github.com/go-primus/primus/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// clients is how many clients each test spreads over three nodes.
func clients() int {
	if testing.Short() {
		return 30
	}
	return 300
}

func TestRecoveryAcrossNodesNATS(t *testing.T) {
	clustertest.TestRecoveryAcrossNodes(t, func(t testing.TB) *clustertest.Env {
		srv := clustertest.StartNATS(t)
		return &clustertest.Env{
			Kill: func(b clustertest.Backend) { b.(*nats.Backend).Conn().Close() },
			Addr: strings.TrimPrefix(srv.URL, "nats://"),
			ConnectDurable: func(t testing.TB, ns, addr string) clustertest.Backend {
				b, err := nats.Connect("nats://"+addr, &nats.Options{Namespace: ns, Durable: &nats.Durability{}})
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
		}
	}, clients())
}

func TestRecoveryAcrossNodesRedis(t *testing.T) {
	clustertest.TestRecoveryAcrossNodes(t, func(t testing.TB) *clustertest.Env {
		srv := clustertest.StartRedis(t)
		return &clustertest.Env{
			Kill: func(b clustertest.Backend) { _ = b.(*redis.Backend).Client().Close() },
			Addr: srv.Addr,
			ConnectDurable: func(t testing.TB, ns, addr string) clustertest.Backend {
				b, err := redis.Connect("redis://"+addr, &redis.Options{Namespace: ns, Durable: &redis.Durability{}})
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
		}
	}, clients())
}
