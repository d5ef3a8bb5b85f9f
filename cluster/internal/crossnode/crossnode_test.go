package crossnode_test

import (
	"os"
	"strconv"
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
	clustertest.TestRecoveryAcrossNodes(t, natsEnv, clients())
}

func TestRecoveryAcrossNodesRedis(t *testing.T) {
	clustertest.TestRecoveryAcrossNodes(t, redisEnv, clients())
}

// natsEnv runs a nats-server in process for a test.
func natsEnv(t testing.TB) *clustertest.Env {
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
}

// redisEnv starts a redis-server for a test.
func redisEnv(t testing.TB) *clustertest.Env {
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
}

// BenchmarkRecovery: the time 1000 clients of a killed node take to resume
// on the two others (PRIMUS_RECOVERY_CLIENTS sets another number). Run it
// without -race:
//
//	go test -run '^$' -bench Recovery -benchtime 1x ./cluster/internal/crossnode
func BenchmarkRecovery(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("PRIMUS_RECOVERY_CLIENTS")); err == nil && v > 0 {
		n = v
	}
	b.Run("NATS", func(b *testing.B) { clustertest.BenchmarkRecovery(b, natsEnv, n) })
	b.Run("Redis", func(b *testing.B) { clustertest.BenchmarkRecovery(b, redisEnv, n) })
}
