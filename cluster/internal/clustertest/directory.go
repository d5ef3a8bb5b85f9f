package clustertest

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/go-primus/primus/cluster"
)

func directory(t testing.TB, b Backend) cluster.Directory {
	t.Helper()
	d, ok := b.(cluster.Directory)
	if !ok {
		t.Fatalf("%T is not a cluster.Directory", b)
	}
	return d
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// TestDirectory runs the room directory contract against the backend:
// syncs, updates (a change undone in the same batch included), queries from
// another node's connection, odd room names and ids, leaving, and expiry.
func TestDirectory(t *testing.T, env *Env) {
	ctx := bg(t)
	ns := Namespace()
	w := directory(t, env.connect(t, ns))
	r := directory(t, env.connect(t, ns)) // another node's view
	const ttl = 10 * time.Second

	members := func(room string, want ...string) {
		t.Helper()
		got, err := r.Members(ctx, room)
		if err != nil || !slices.Equal(sorted(got), sorted(want)) || len(got) != len(want) {
			t.Errorf("Members(%q) = %q, %v; want %q", room, got, err, want)
		}
		n, err := r.Count(ctx, room)
		if err != nil || n != len(want) {
			t.Errorf("Count(%q) = %d, %v; want %d", room, n, err, len(want))
		}
	}
	roomsOf := func(spark string, want ...string) {
		t.Helper()
		got, err := r.RoomsOf(ctx, spark)
		if err != nil || !slices.Equal(sorted(got), sorted(want)) {
			t.Errorf("RoomsOf(%q) = %q, %v; want %q", spark, got, err, want)
		}
	}
	rooms := func(want ...string) {
		t.Helper()
		got, err := r.Rooms(ctx)
		if err != nil || !slices.Equal(sorted(got), sorted(want)) {
			t.Errorf("Rooms() = %q, %v; want %q", got, err, want)
		}
	}
	nodeRooms := func(node, wantVersion string, want map[string][]string) {
		t.Helper()
		got, v, err := r.NodeRooms(ctx, node)
		if err != nil || v != wantVersion {
			t.Errorf("NodeRooms(%s) version %q, %v; want %q", node, v, err, wantVersion)
		}
		for room := range got {
			got[room] = sorted(got[room])
		}
		for room := range want {
			want[room] = sorted(want[room])
		}
		if !maps.EqualFunc(got, want, slices.Equal) {
			t.Errorf("NodeRooms(%s) = %q, want %q", node, got, want)
		}
	}

	members("lobby")
	rooms()
	nodeRooms("n1", "", map[string][]string{})

	// Names that are not plain NATS subject tokens, and an empty room.
	odd, oddID := "a.b c*>", "x.y>"
	if err := w.SyncRooms(ctx, "n1", map[string][]string{"lobby": {"s1", "s2"}, odd: {"s1", oddID}, "": {"s2"}}, "e1:1", ttl); err != nil {
		t.Fatal(err)
	}
	if err := w.SyncRooms(ctx, "n-2", map[string][]string{"lobby": {"s3"}}, "e2:5", ttl); err != nil {
		t.Fatal(err)
	}
	members("lobby", "s1", "s2", "s3")
	members(odd, "s1", oddID)
	members("", "s2")
	roomsOf("s1", "lobby", odd)
	roomsOf(oddID, odd)
	roomsOf("nobody")
	rooms("lobby", odd, "")
	nodeRooms("n1", "e1:1", map[string][]string{"lobby": {"s1", "s2"}, odd: {"s1", oddID}, "": {"s2"}})
	nodeRooms("n-2", "e2:5", map[string][]string{"lobby": {"s3"}})

	// Changes, in order: s5 joins and leaves x within the batch, s2 leaves
	// and joins the lobby again.
	changes := []cluster.RoomChange{
		{Room: "lobby", Spark: "s1"},
		{Room: "x", Spark: "s4", Join: true},
		{Room: "x", Spark: "s5", Join: true},
		{Room: "x", Spark: "s5"},
		{Room: "lobby", Spark: "s2"},
		{Room: "lobby", Spark: "s2", Join: true},
		{Room: "", Spark: "s2"},
	}
	if err := w.UpdateRooms(ctx, "n1", changes, "e1:8", ttl); err != nil {
		t.Fatal(err)
	}
	members("lobby", "s2", "s3")
	members("x", "s4")
	members("")
	roomsOf("s1", odd)
	roomsOf("s5")
	rooms("lobby", odd, "x")
	nodeRooms("n1", "e1:8", map[string][]string{"lobby": {"s2"}, odd: {"s1", oddID}, "x": {"s4"}})

	// A sync states the whole truth: what it leaves out is gone.
	if err := w.SyncRooms(ctx, "n1", map[string][]string{"y": {"s9"}}, "e1:9", ttl); err != nil {
		t.Fatal(err)
	}
	members("lobby", "s3")
	members("x")
	roomsOf("s4")
	rooms("lobby", "y")
	nodeRooms("n1", "e1:9", map[string][]string{"y": {"s9"}})

	// Leaving takes the node's memberships at once.
	if err := w.LeaveRooms(ctx, "n-2"); err != nil {
		t.Fatal(err)
	}
	members("lobby")
	nodeRooms("n-2", "", map[string][]string{})
	rooms("y")

	// A node that stops refreshing expires, memberships and all, updates
	// included.
	const short = time.Second
	if err := w.SyncRooms(ctx, "mortal", map[string][]string{"m": {"z1"}}, "e3:1", short); err != nil {
		t.Fatal(err)
	}
	synced := time.Now()
	if err := w.UpdateRooms(ctx, "mortal", []cluster.RoomChange{{Room: "m", Spark: "z2", Join: true}}, "e3:2", short); err != nil {
		t.Fatal(err)
	}
	members("m", "z1", "z2")
	Eventually(t, short+3*time.Second, "the expired node's memberships gone", func() bool {
		got, err := r.Members(ctx, "m")
		if err != nil || len(got) > 0 {
			return false
		}
		nr, v, err := r.NodeRooms(ctx, "mortal")
		return err == nil && len(nr) == 0 && v == ""
	})
	if gone := time.Since(synced); gone < short {
		t.Errorf("the node expired %v after its sync, before its ttl of %v", gone, short)
	}
	roomsOf("z1")
	rooms("y")
	members("y", "s9")

	// A node's updates after it expired are refused or ignored; its next
	// sync brings it back.
	_ = w.UpdateRooms(ctx, "mortal", []cluster.RoomChange{{Room: "m", Spark: "z3", Join: true}}, "e3:3", short)
	cctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	if err := w.SyncRooms(cctx, "mortal", map[string][]string{"m": {"z3"}}, "e3:3", ttl); err != nil {
		t.Fatal(err)
	}
	members("m", "z3")
}

// BenchmarkDirectory measures the room directory: a node's whole sync with
// 10,000 memberships (100 rooms of 100), a change of one membership (a
// join, then a leave), and the queries on a room of 100 members among
// them.
func BenchmarkDirectory(b *testing.B, newEnv func(t testing.TB) *Env) {
	env := newEnv(b)
	ns := Namespace()
	d := directory(b, env.connect(b, ns))
	ctx := context.Background()
	rooms := map[string][]string{}
	for i := range 100 {
		room := "room-" + strconv.Itoa(i)
		for j := range 100 {
			rooms[room] = append(rooms[room], "spark-"+strconv.Itoa(i*100+j))
		}
	}
	const ttl = time.Minute
	b.Run("Sync10k", func(b *testing.B) {
		for b.Loop() {
			if err := d.SyncRooms(ctx, "n1", rooms, "e:1", ttl); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("JoinLeave", func(b *testing.B) {
		for b.Loop() {
			for _, join := range []bool{true, false} {
				if err := d.UpdateRooms(ctx, "n1", []cluster.RoomChange{{Room: "room-1", Spark: "x", Join: join}}, "e:2", ttl); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("Members100", func(b *testing.B) {
		for b.Loop() {
			if ids, err := d.Members(ctx, "room-7"); err != nil || len(ids) != 100 {
				b.Fatal(len(ids), err)
			}
		}
	})
	b.Run("Count100", func(b *testing.B) {
		for b.Loop() {
			if n, err := d.Count(ctx, "room-7"); err != nil || n != 100 {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("RoomsOf", func(b *testing.B) {
		for b.Loop() {
			if rs, err := d.RoomsOf(ctx, "spark-705"); err != nil || len(rs) != 1 {
				b.Fatal(rs, err)
			}
		}
	})
}
