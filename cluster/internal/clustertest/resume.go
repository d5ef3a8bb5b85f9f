package clustertest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cluster"
	"github.com/go-primus/primus/internal/tcpproxy"
	"github.com/go-primus/primus/rooms"
)

// TestRecoveryAcrossNodes runs a cluster with Options.Recovery behind a
// load balancer, clients spread over its nodes, and broadcasts, room
// writes, writes by id and echoes flowing; one node is killed, or every
// node restarted in turn, and each client must resume its spark elsewhere
// and receive every message, exactly once, in order.
func TestRecoveryAcrossNodes(t *testing.T, newEnv func(t testing.TB) *Env, clients int) {
	// One after the other: each loads the machine.
	t.Run("NodeKilled", func(t *testing.T) {
		testResumeAfterKill(t, newEnv(t), clients)
	})
	t.Run("RollingRestart", func(t *testing.T) {
		// A third of them: every node's clients move, three times over.
		testRollingRestart(t, newEnv(t), max(clients/3, 10))
	})
}

// rnode is a node of a recovery test cluster.
type rnode struct {
	srv   *primus.Server
	c     *cluster.Cluster
	rooms *rooms.Rooms
	b     Backend
	hs    *httptest.Server
	proxy *tcpproxy.Proxy
	use   sync.RWMutex // held by a writer while it writes through the node
	down  bool         // under use
}

const rooms3 = 3

// recoveryCluster is the cluster, its load balancer and what its servers
// saw.
type recoveryCluster struct {
	t     testing.TB
	env   *Env
	ns    string
	lb    *tcpproxy.Proxy // round robin over the live nodes
	mu    sync.Mutex
	nodes []*rnode
	pings map[string]map[int]int // spark id → ping number → times handled
	errs  []string               // the first errors the nodes reported
}

func newRecoveryCluster(t testing.TB, env *Env) *recoveryCluster {
	rc := &recoveryCluster{t: t, env: env, ns: Namespace(), lb: tcpproxy.New(t, ""), pings: map[string]map[int]int{}}
	t.Cleanup(func() {
		if t.Failed() {
			rc.mu.Lock()
			t.Logf("the nodes reported: %q", rc.errs)
			rc.mu.Unlock()
		}
	})
	for i := range 3 {
		rc.start(i)
	}
	return rc
}

// start runs node i (again).
func (rc *recoveryCluster) start(i int) *rnode {
	t := rc.t
	n := &rnode{b: rc.env.ConnectDurable(t, rc.ns, rc.env.Addr)}
	srv, err := primus.New(&primus.Options{Recovery: &primus.Recovery{Window: time.Minute}, SendQueueBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	n.srv = srv
	id := fmt.Sprintf("n%d-%d", i, time.Now().UnixNano()%1e6)
	n.c, err = cluster.New(srv, &cluster.Options{
		Broker: n.b, Registry: n.b, Recovery: true, Expiry: 3 * time.Second, Timeout: 2 * time.Second, NodeID: id,
		OnError: func(err error) {
			rc.mu.Lock()
			if len(rc.errs) < 20 {
				rc.errs = append(rc.errs, id+": "+err.Error())
			}
			rc.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.rooms = rooms.New(srv, &rooms.Options{Relay: n.c})
	srv.OnConnection(func(sp *primus.Spark) {
		if !sp.Moved() {
			if err := n.rooms.Join(sp, sp.Query().Get("room")); err != nil {
				t.Errorf("Join: %v", err)
			}
		}
		sp.OnData(func(m *primus.Message) {
			var s string
			if m.Decode(&s) != nil || !strings.HasPrefix(s, "p:") {
				t.Errorf("node got %q", m.Raw())
				return
			}
			k, _ := strconv.Atoi(s[2:])
			rc.mu.Lock()
			if rc.pings[sp.ID()] == nil {
				rc.pings[sp.ID()] = map[int]int{}
			}
			rc.pings[sp.ID()][k]++
			rc.mu.Unlock()
			_ = sp.Write("e:" + s[2:])
		})
	})
	n.hs = httptest.NewServer(srv)
	n.proxy = tcpproxy.New(t, strings.TrimPrefix(n.hs.URL, "http://"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		_ = n.c.Close(ctx)
		_ = srv.Shutdown(ctx)
		n.hs.Close()
		_ = n.b.Close()
	})
	rc.mu.Lock()
	for len(rc.nodes) <= i {
		rc.nodes = append(rc.nodes, nil)
	}
	rc.nodes[i] = n
	rc.mu.Unlock()
	rc.lb.SetTargetAt(i, n.proxy.Addr())
	return n
}

// through calls f with a node that is up, preferring the one at i, and
// reports whether there was one. The node stays up until f returns.
func (rc *recoveryCluster) through(i int, f func(*rnode)) bool {
	rc.mu.Lock()
	nodes := slices.Clone(rc.nodes)
	rc.mu.Unlock()
	for k := range nodes {
		n := nodes[(i+k)%len(nodes)]
		if n == nil {
			continue
		}
		n.use.RLock()
		if !n.down {
			f(n)
			n.use.RUnlock()
			return true
		}
		n.use.RUnlock()
	}
	return false
}

// stop takes node n out of the writers' rotation and waits until what was
// written through it is in the journal: the writes of one writer then stay
// in order when it moves to another node.
func (rc *recoveryCluster) stop(n *rnode, flush bool) {
	n.use.Lock()
	n.down = true
	n.use.Unlock()
	if flush {
		if err := n.c.Flush(bg(rc.t)); err != nil {
			rc.t.Errorf("Flush: %v", err)
		}
	}
}

// rclient is a test client and what it received.
type rclient struct {
	c     *primus.Client
	id    string
	room  int
	mu    sync.Mutex
	last  map[string]int // stream → last number
	first map[string]int
	errs  []string
	echo  map[int]int // echo number → times received
	resum []primus.ResumeEvent
	at    []time.Time // when each resume happened
	pings int
}

func (c *rclient) got(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stream, num, ok := strings.Cut(s, ":")
	k, err := strconv.Atoi(num)
	if !ok || err != nil {
		c.errs = append(c.errs, fmt.Sprintf("unexpected message %q", s))
		return
	}
	if stream == "e" {
		c.echo[k]++
		if len(c.echo) != k && len(c.errs) < 10 {
			// Echoes come in order: the k-th distinct one is number k.
			if c.echo[k] == 1 {
				c.errs = append(c.errs, fmt.Sprintf("echo %d arrived as distinct echo number %d", k, len(c.echo)))
			}
		}
		return
	}
	last, seen := c.last[stream]
	if !seen {
		c.first[stream] = k
	} else if k != last+1 && len(c.errs) < 10 {
		c.errs = append(c.errs, fmt.Sprintf("%s: %d after %d", stream, k, last))
	}
	c.last[stream] = k
}

func (rc *recoveryCluster) dial(i int) *rclient {
	t := rc.t
	c := &rclient{room: i % rooms3, last: map[string]int{}, first: map[string]int{}, echo: map[int]int{}}
	url := "http://" + rc.lb.Addr() + "/primus?room=r" + strconv.Itoa(c.room)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	var err error
	c.c, err = primus.Dial(ctx, url, &primus.ClientOptions{
		Reconnect: primus.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond, Retries: 50},
		OnData: func(m *primus.Message) {
			var s string
			if m.Decode(&s) != nil {
				s = string(m.Raw())
			}
			c.got(s)
		},
		OnResume: func(ev primus.ResumeEvent) {
			c.mu.Lock()
			c.resum = append(c.resum, ev)
			c.at = append(c.at, time.Now())
			c.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.c.Close() })
	if c.id, err = c.c.ID(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// traffic writes, until stop is closed: broadcasts "b:N", to each room
// "rK:N", to each client by id "d:N", and each client's pings "p:N",
// which the spark's handler echoes as "e:N". The writes by the cluster are
// made through nodes 1 and 2 while they are up: what a node that is killed
// had queued for the journal dies with it (see the package documentation).
type traffic struct {
	wg    sync.WaitGroup
	stop  chan struct{}
	b     atomic.Int64
	r     [rooms3]atomic.Int64
	d     []atomic.Int64
	errs  atomic.Int64
	first error
	mu    sync.Mutex
}

func (tr *traffic) fail(err error) {
	tr.mu.Lock()
	if tr.first == nil {
		tr.first = err
	}
	tr.mu.Unlock()
	tr.errs.Add(1)
}

func (rc *recoveryCluster) flow(cl []*rclient) *traffic {
	tr := &traffic{stop: make(chan struct{}), d: make([]atomic.Int64, len(cl))}
	every := func(d time.Duration, f func()) {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			tk := time.NewTicker(d)
			defer tk.Stop()
			for {
				select {
				case <-tr.stop:
					return
				case <-tk.C:
					f()
				}
			}
		}()
	}
	// A write that fails (its node is closing) is made again, through
	// another node, with the same number.
	every(50*time.Millisecond, func() {
		k := tr.b.Load() + 1
		rc.through(2, func(n *rnode) {
			if err := n.c.Write(fmt.Sprintf("b:%d", k)); err == nil {
				tr.b.Store(k)
			}
		})
	})
	every(50*time.Millisecond, func() {
		for r := range rooms3 {
			k := tr.r[r].Load() + 1
			rc.through(1, func(n *rnode) {
				if err := n.rooms.Room(fmt.Sprintf("r%d", r)).Write(fmt.Sprintf("r%d:%d", r, k)); err == nil {
					tr.r[r].Store(k)
				}
			})
		}
	})
	next := 0
	every(10*time.Millisecond, func() {
		i := next % len(cl)
		next++
		k := tr.d[i].Load() + 1
		rc.through(1, func(n *rnode) {
			if err := n.c.WriteTo(cl[i].id, fmt.Sprintf("d:%d", k)); err == nil {
				tr.d[i].Store(k)
			}
		})
	})
	every(500*time.Millisecond, func() {
		for _, c := range cl {
			c.mu.Lock()
			c.pings++
			k := c.pings
			c.mu.Unlock()
			if err := c.c.Write(fmt.Sprintf("p:%d", k)); err != nil {
				tr.fail(err)
			}
		}
	})
	return tr
}

// check waits until every client has every message written, then checks
// that it got each once, in order; dupEchoes tells whether echoes may come
// twice (a node killed: see the package documentation).
func (rc *recoveryCluster) check(cl []*rclient, tr *traffic, dupEchoes bool) {
	t := rc.t
	close(tr.stop)
	tr.wg.Wait()
	if tr.first != nil {
		t.Fatalf("%d client writes failed; the first: %v", tr.errs.Load(), tr.first)
	}
	done := func(c *rclient, i int) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.last["b"] == int(tr.b.Load()) && c.last[fmt.Sprintf("r%d", c.room)] == int(tr.r[c.room].Load()) &&
			c.last["d"] == int(tr.d[i].Load()) && len(c.echo) == c.pings
	}
	deadline := time.Now().Add(2 * Timeout)
	for i, c := range cl {
		for !done(c, i) {
			if time.Now().After(deadline) {
				c.mu.Lock()
				msg := fmt.Sprintf("client %d (%s) has b:%d/%d, r%d:%d/%d, d:%d/%d, %d/%d echoes; resumes %v; errors %v", i, c.id,
					c.last["b"], tr.b.Load(), c.room, c.last[fmt.Sprintf("r%d", c.room)], tr.r[c.room].Load(),
					c.last["d"], tr.d[i].Load(), len(c.echo), c.pings, c.resum, c.errs)
				c.mu.Unlock()
				t.Fatal(msg)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var dups int
	for i, c := range cl {
		c.mu.Lock()
		if len(c.errs) > 0 {
			t.Errorf("client %d (%s): %v", i, c.id, c.errs)
		}
		if tr.d[i].Load() > 0 && c.first["d"] != 1 {
			t.Errorf("client %d: first write by id d:%d, want d:1", i, c.first["d"])
		}
		for k, n := range c.echo {
			if n > 1 {
				dups += n - 1
				if !dupEchoes {
					t.Errorf("client %d: echo %d came %d times", i, k, n)
				}
			}
		}
		for _, ev := range c.resum {
			if !ev.Recovered {
				t.Errorf("client %d (%s) did not recover: %v", i, c.id, ev.Reason)
			}
		}
		c.mu.Unlock()
	}
	rc.mu.Lock()
	var handled, twice int
	for _, m := range rc.pings {
		for _, n := range m {
			handled++
			if n > 1 {
				twice++
			}
		}
	}
	rc.mu.Unlock()
	if twice > 0 && !dupEchoes {
		t.Errorf("%d pings were handled twice", twice)
	}
	t.Logf("%d clients; %d broadcasts, %v room writes, %d pings handled (%d twice, %d echoes repeated)", len(cl), tr.b.Load(), []int64{tr.r[0].Load(), tr.r[1].Load(), tr.r[2].Load()}, handled, twice, dups)
}

func (rc *recoveryCluster) dialAll(n int) []*rclient {
	cl := make([]*rclient, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range cl {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cl[i] = rc.dial(i)
		}()
	}
	wg.Wait()
	if rc.t.Failed() {
		rc.t.FailNow()
	}
	return cl
}

// onNode returns the clients whose spark is on n.
func onNode(n *rnode, cl []*rclient) []*rclient {
	var out []*rclient
	for _, c := range cl {
		if _, ok := n.srv.Spark(c.id); ok {
			out = append(out, c)
		}
	}
	return out
}

// resumed waits until every client in cl has resumed once more than it
// had.
func waitResumed(t testing.TB, cl []*rclient, before map[*rclient]int) {
	deadline := time.Now().Add(2 * Timeout)
	for {
		var late []string
		for _, c := range cl {
			c.mu.Lock()
			if len(c.resum) <= before[c] {
				select {
				case <-c.c.Done():
					late = append(late, fmt.Sprintf("%s (ended: %v)", c.id, c.c.Err()))
				default:
					late = append(late, fmt.Sprintf("%s (%d resumes)", c.id, len(c.resum)))
				}
			}
			c.mu.Unlock()
		}
		if len(late) == 0 {
			return
		}
		if time.Now().After(deadline) {
			f, err := os.CreateTemp("", "primus-resume-goroutines-*.txt")
			if err == nil {
				_ = pprof.Lookup("goroutine").WriteTo(f, 2)
				_ = f.Close()
			}
			t.Fatalf("%d of %d clients did not resume elsewhere within %v: %v (goroutines in %s)", len(late), len(cl), 2*Timeout, late, f.Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func resumes(cl []*rclient) map[*rclient]int {
	m := map[*rclient]int{}
	for _, c := range cl {
		c.mu.Lock()
		m[c] = len(c.resum)
		c.mu.Unlock()
	}
	return m
}

// testResumeAfterKill kills node 0 (no shutdown: its clients' connections
// die and it loses the broker) while traffic flows.
func testResumeAfterKill(t *testing.T, env *Env, clients int) {
	rc := newRecoveryCluster(t, env)
	cl := rc.dialAll(clients)
	tr := rc.flow(cl)
	time.Sleep(500 * time.Millisecond) // traffic before the kill, not a synchronisation
	victim := rc.nodes[0]
	moving := onNode(victim, cl)
	if len(moving) == 0 {
		t.Fatal("no client on node 0")
	}
	before := resumes(moving)
	killed := time.Now()
	rc.stop(victim, false)
	rc.lb.SetTargetAt(0, "")
	env.Kill(victim.b)
	victim.proxy.Cut()
	waitResumed(t, moving, before)
	t.Logf("%d clients of the killed node resumed on the others within %v", len(moving), time.Since(killed).Round(time.Millisecond))
	for _, c := range moving {
		for _, n := range rc.nodes[1:] {
			if _, ok := n.srv.Spark(c.id); ok {
				goto next
			}
		}
		t.Errorf("client %s has no spark on a live node", c.id)
	next:
	}
	time.Sleep(300 * time.Millisecond) // traffic after the resumes
	rc.check(cl, tr, true)
}

// testRollingRestart restarts every node in turn, as a deploy does:
// ShutdownReconnect, then the cluster's Close, and a new process in its
// place.
func testRollingRestart(t *testing.T, env *Env, clients int) {
	rc := newRecoveryCluster(t, env)
	cl := rc.dialAll(clients)
	tr := rc.flow(cl)
	for i := range 3 {
		time.Sleep(300 * time.Millisecond) // traffic between restarts
		n := rc.nodes[i]
		moving := onNode(n, cl)
		before := resumes(moving)
		rc.stop(n, true)
		rc.lb.SetTargetAt(i, "")
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		if err := n.srv.ShutdownReconnect(ctx); err != nil {
			t.Errorf("ShutdownReconnect: %v", err)
		}
		cancel()
		waitResumed(t, moving, before)
		ctx, cancel = context.WithTimeout(context.Background(), Timeout)
		if err := n.c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		cancel()
		rc.start(i)
	}
	time.Sleep(300 * time.Millisecond)
	rc.check(cl, tr, false)
}
