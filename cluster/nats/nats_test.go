package nats_test

import (
	"strings"
	"testing"

	"github.com/go-primus/primus/cluster/internal/clustertest"
	"github.com/go-primus/primus/cluster/nats"
	"github.com/go-primus/primus/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// newEnv starts an in-process NATS server with JetStream for one test.
func newEnv(t testing.TB) *clustertest.Env {
	srv := clustertest.StartNATS(t)
	return &clustertest.Env{
		Connect: func(t testing.TB, ns string) clustertest.Backend {
			b, err := nats.Connect(srv.URL, &nats.Options{Namespace: ns})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		Kill:        func(b clustertest.Backend) { b.(*nats.Backend).Conn().Close() },
		StopBroker:  func(testing.TB) { srv.Stop() },
		StartBroker: srv.Start,
		Addr:        strings.TrimPrefix(srv.URL, "nats://"),
		ConnectDurable: func(t testing.TB, ns, addr string) clustertest.Backend {
			b, err := nats.Connect("nats://"+addr, &nats.Options{Namespace: ns, Durable: &nats.Durability{}})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		ConnectJournal: func(t testing.TB, ns, addr string, small bool) clustertest.Backend {
			dur := &nats.Durability{}
			if small {
				// About 170 bytes per entry of 100: 24 to 48 entries.
				dur.MaxBytes = 8 << 10
			}
			b, err := nats.Connect("nats://"+addr, &nats.Options{Namespace: ns, Durable: dur})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	}
}

func TestDurable(t *testing.T) {
	t.Parallel()
	clustertest.TestDurable(t, newEnv)
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

func BenchmarkDirectory(b *testing.B) { clustertest.BenchmarkDirectory(b, newEnv) }

func TestJournal(t *testing.T) {
	t.Parallel()
	clustertest.TestJournal(t, newEnv)
}

func TestSessions(t *testing.T) {
	t.Parallel()
	clustertest.TestSessions(t, newEnv(t))
}
