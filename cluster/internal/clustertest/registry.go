package clustertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-primus/primus/cluster"
)

// Backend is what each backend package provides: a node's broker and
// registry in one value.
type Backend interface {
	cluster.Broker
	cluster.Registry
}

// Env is a backend under test, on a real server.
type Env struct {
	// Connect returns a new backend (a node's connections) in the
	// namespace; the suite closes it.
	Connect func(t testing.TB, namespace string) Backend
	// Kill cuts the backend's connections as a crash of its process
	// would: it stops refreshing the registry and never leaves it.
	Kill func(b Backend)
	// StopBroker stops the server; StartBroker starts it again at the
	// same address and returns once it accepts connections.
	StopBroker, StartBroker func(t testing.TB)
	// PauseBroker freezes the server with its connections open, so that
	// calls hang; ResumeBroker thaws it. Nil when the backend's server
	// cannot be frozen (an in-process one).
	PauseBroker, ResumeBroker func()
	// Addr is the broker's host:port.
	Addr string
	// ConnectDurable returns a new backend with durable channels, to the
	// broker at addr (Addr, or a proxy in front of it). Nil when the
	// backend has none.
	ConnectDurable func(t testing.TB, namespace, addr string) Backend
	// ConnectJournal returns a new backend with the Durable option for the
	// journal suite (journal.go), to the broker at addr; with small, its
	// journal's limits keep at least the last 20 entries of 100 bytes and
	// at most 500 of them. Nil: the suite uses ConnectDurable and skips
	// its cases about trimmed entries.
	ConnectJournal func(t testing.TB, namespace, addr string, small bool) Backend
}

var namespaces atomic.Int64

// Namespace returns a namespace no other test of the process uses.
func Namespace() string { return fmt.Sprintf("t%d", namespaces.Add(1)) }

func (env *Env) connect(t testing.TB, ns string) Backend {
	t.Helper()
	b := env.Connect(t, ns)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func bg(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// Eventually polls cond every 20 ms until it holds, failing the test after
// timeout. It is for state held by a server that has no way to tell when it
// changes (a key expiring); waits on this process's events use channels.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s: not within %v", what, timeout)
		}
	}
	return time.Since(start)
}

// TestRegistry runs the registry contract against the backend.
func TestRegistry(t *testing.T, env *Env) {
	ctx := bg(t)
	ns := Namespace()
	r := env.connect(t, ns)
	other := env.connect(t, ns) // another node's view of the same registry
	const ttl = 10 * time.Second

	lookup := func(reg cluster.Registry, spark, want string) {
		t.Helper()
		got, err := reg.Lookup(ctx, spark)
		switch {
		case want == "" && !errors.Is(err, cluster.ErrNotFound):
			t.Errorf("Lookup(%q) = %q, %v; want ErrNotFound", spark, got, err)
		case want != "" && (err != nil || got != want):
			t.Errorf("Lookup(%q) = %q, %v; want %q", spark, got, err, want)
		}
	}
	nodes := func(want ...cluster.Node) {
		t.Helper()
		got, err := other.Nodes(ctx)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Nodes() = %v, %v; want %v", got, err, want)
		}
	}

	nodes()
	lookup(other, "nobody", "")
	// Ids that are not plain tokens of a NATS subject, and an empty one.
	odd := "a.b c*>"
	if err := r.Sync(ctx, "n1", []string{"s1", "s2", odd}, ttl); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx, "n.2", []string{"s3", "=s4"}, ttl); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx, "n3", nil, ttl); err != nil {
		t.Fatal(err)
	}
	nodes(cluster.Node{ID: "n.2", Sparks: 2}, cluster.Node{ID: "n1", Sparks: 3}, cluster.Node{ID: "n3"})
	lookup(other, "s1", "n1")
	lookup(other, odd, "n1")
	lookup(other, "s3", "n.2")
	lookup(other, "=s4", "n.2")
	lookup(other, "", "")
	lookup(other, "s5", "")

	// Changes between syncs.
	if err := r.Update(ctx, "n1", []string{"s5"}, []string{"s1"}, ttl); err != nil {
		t.Fatal(err)
	}
	lookup(other, "s1", "")
	lookup(other, "s5", "n1")
	nodes(cluster.Node{ID: "n.2", Sparks: 2}, cluster.Node{ID: "n1", Sparks: 3}, cluster.Node{ID: "n3"})

	// A sync states the whole truth: what it leaves out is gone.
	if err := r.Sync(ctx, "n1", []string{"s2"}, ttl); err != nil {
		t.Fatal(err)
	}
	lookup(other, "s5", "")
	lookup(other, odd, "")
	lookup(other, "s2", "n1")

	// Leaving takes the node and its sparks at once.
	if err := r.Leave(ctx, "n.2"); err != nil {
		t.Fatal(err)
	}
	lookup(other, "s3", "")
	nodes(cluster.Node{ID: "n1", Sparks: 1}, cluster.Node{ID: "n3"})
	if err := r.Leave(ctx, "n3"); err != nil {
		t.Fatal(err)
	}

	// A node that stops refreshing expires, sparks and all.
	const short = time.Second
	if err := r.Sync(ctx, "mortal", []string{"m1", "m2"}, short); err != nil {
		t.Fatal(err)
	}
	synced := time.Now()
	lookup(other, "m1", "mortal")
	Eventually(t, short+2*time.Second, "the expired node's spark m1 gone", func() bool {
		_, err := other.Lookup(ctx, "m1")
		return errors.Is(err, cluster.ErrNotFound)
	})
	Eventually(t, short+2*time.Second, "the expired node gone from Nodes", func() bool {
		got, err := other.Nodes(ctx)
		return err == nil && !slices.ContainsFunc(got, func(n cluster.Node) bool { return n.ID == "mortal" })
	})
	if gone := time.Since(synced); gone < short {
		t.Errorf("the node expired %v after its sync, before its ttl of %v", gone, short)
	}
	lookup(other, "m2", "")
	nodes(cluster.Node{ID: "n1", Sparks: 1})
}
