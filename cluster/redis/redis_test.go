package redis_test

import (
	"testing"

	"github.com/go-primus/primus/cluster/internal/clustertest"
	"github.com/go-primus/primus/cluster/redis"
	"github.com/go-primus/primus/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// newEnv starts a redis-server process for one test.
func newEnv(t testing.TB) *clustertest.Env { return newEnvOn(clustertest.StartRedis(t)) }

// newEnvOn is the test environment of a running redis-server.
func newEnvOn(srv *clustertest.Redis) *clustertest.Env {
	return &clustertest.Env{
		Connect: func(t testing.TB, ns string) clustertest.Backend {
			b, err := redis.Connect("redis://"+srv.Addr, &redis.Options{Namespace: ns})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		Kill:         func(b clustertest.Backend) { _ = b.(*redis.Backend).Client().Close() },
		StopBroker:   func(testing.TB) { srv.Stop() },
		StartBroker:  srv.Start,
		PauseBroker:  srv.Pause,
		ResumeBroker: srv.Resume,
		Addr:         srv.Addr,
		ConnectDurable: func(t testing.TB, ns, addr string) clustertest.Backend {
			b, err := redis.Connect("redis://"+addr, &redis.Options{Namespace: ns, Durable: &redis.Durability{}})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		ConnectJournal: func(t testing.TB, ns, addr string, small bool) clustertest.Backend {
			dur := &redis.Durability{}
			if small {
				// Below 1,000, the journal is trimmed exactly: it keeps
				// the last 100 entries.
				dur.MaxLen = 100
			}
			b, err := redis.Connect("redis://"+addr, &redis.Options{Namespace: ns, Durable: dur})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	}
}

func TestDurable(t *testing.T) {
	t.Parallel()
	clustertest.TestDurable(t, func(t testing.TB) *clustertest.Env {
		return newEnvOn(clustertest.StartRedisPersistent(t))
	})
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	clustertest.TestRegistry(t, newEnv(t))
}

func TestCluster(t *testing.T) {
	t.Parallel()
	clustertest.TestCluster(t, newEnv)
}

func BenchmarkBroadcast(b *testing.B) { clustertest.BenchmarkBroadcast(b, newEnv) }

func TestDirectory(t *testing.T) {
	t.Parallel()
	clustertest.TestDirectory(t, newEnv(t))
}

func TestPresence(t *testing.T) {
	t.Parallel()
	clustertest.TestPresence(t, newEnv)
}

func TestJournal(t *testing.T) {
	t.Parallel()
	// The journal suite restarts Redis and expects it to keep what it
	// acknowledged: persistence.
	clustertest.TestJournal(t, func(t testing.TB) *clustertest.Env {
		return newEnvOn(clustertest.StartRedisPersistent(t))
	})
}

func TestSessions(t *testing.T) {
	t.Parallel()
	clustertest.TestSessions(t, newEnv(t))
}

func BenchmarkDirectory(b *testing.B) { clustertest.BenchmarkDirectory(b, newEnv) }
