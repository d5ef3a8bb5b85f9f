package rooms_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	pt "github.com/go-primus/primus/internal/plugintest"
	"github.com/go-primus/primus/rooms"
)

// TestEventsAndQueries, on one server: join and leave events in order
// (none for a join of a member, leaves when a spark ends), handlers that
// use the rooms and one that panics, the *All queries (this server is the
// whole cluster), and the remote operations by id.
func TestEventsAndQueries(t *testing.T) {
	t.Parallel()
	w := newWorld(t, pt.Flavours[0], 3, false)
	r := w.rooms
	got := make(chan string, 64)
	r.OnJoin(func(ev rooms.Event) {
		got <- "+" + ev.Room + " " + ev.Spark + " " + ev.Node
		_ = r.Room(ev.Room).Members() // handlers may use the rooms
	})
	r.OnJoin(func(rooms.Event) { panic("a broken handler") })
	r.OnLeave(func(ev rooms.Event) { got <- "-" + ev.Room + " " + ev.Spark })
	expect := func(want ...string) {
		t.Helper()
		for _, s := range want {
			if g := pt.Recv(t, got, "an event"); g != s {
				t.Errorf("event %q, want %q", g, s)
			}
		}
	}
	a, b, c := w.m[0].spark, w.m[1].spark, w.m[2].spark
	join(t, r, w.m[0], "x")
	join(t, r, w.m[0], "x")
	join(t, r, w.m[1], "x")
	join(t, r, w.m[0], "y")
	r.Leave(a, "x")
	r.Leave(a, "x")
	expect("+x "+a.ID()+" ", "+x "+b.ID()+" ", "+y "+a.ID()+" ", "-x "+a.ID())

	ctx := context.Background()
	if m, err := r.MembersAll(ctx, "x"); err != nil || !slices.Equal(m, []string{b.ID()}) {
		t.Errorf("MembersAll(x) = %q, %v", m, err)
	}
	if n, err := r.CountAll(ctx, "y"); err != nil || n != 1 {
		t.Errorf("CountAll(y) = %d, %v", n, err)
	}
	if rs, err := r.RoomsOfAll(ctx, a.ID()); err != nil || !slices.Equal(rs, []string{"y"}) {
		t.Errorf("RoomsOfAll(a) = %q, %v", rs, err)
	}
	if rs, err := r.RoomsAll(ctx); err != nil || !slices.Equal(rs, []string{"x", "y"}) {
		t.Errorf("RoomsAll() = %q, %v", rs, err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.MembersAll(done, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("MembersAll with an ended context = %v", err)
	}

	// By id, on this server.
	if err := r.JoinRemote(ctx, c.ID(), "z"); err != nil {
		t.Fatal(err)
	}
	if err := r.LeaveRemote(ctx, b.ID(), "x"); err != nil {
		t.Fatal(err)
	}
	if err := r.LeaveRemote(ctx, b.ID(), "x"); err != nil {
		t.Errorf("LeaveRemote of a room the spark is not in: %v", err)
	}
	if err := r.JoinRemote(ctx, "nobody", "z"); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("JoinRemote(unknown) = %v, want ErrNotFound", err)
	}
	if err := r.LeaveRemote(ctx, "nobody", "z"); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("LeaveRemote(unknown) = %v, want ErrNotFound", err)
	}
	expect("+z "+c.ID()+" ", "-x "+b.ID())

	// A spark that ends leaves its rooms: one event each.
	_ = w.m[2].client.Close()
	pt.Recv(t, c.Done(), "the spark's end")
	expect("-z " + c.ID())
	if r.Presence() != nil {
		t.Error("Presence() without a cluster is not nil")
	}
}
