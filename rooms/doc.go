// Package rooms groups the sparks of a primus server into named rooms:
// a spark joins and leaves rooms by name, and one write reaches every member
// of a room, encoded once.
//
//	r := rooms.New(srv, nil)
//	srv.OnConnection(func(sp *primus.Spark) {
//		sp.OnData(func(m *primus.Message) {
//			var text string
//			if err := m.Decode(&text); err != nil {
//				return
//			}
//			_ = r.Join(sp, "lobby")
//			_ = r.Room("lobby").Except(sp.ID()).Write(text) // everyone else in the lobby
//		})
//	})
//
// A spark leaves its rooms when it ends; Leave and LeaveAll take it out
// earlier. RoomsOf lists a spark's rooms, Rooms the rooms that have members,
// and Room(name).Members the members. OnJoin and OnLeave add handlers of
// the changes, which run one at a time, in order, on a goroutine of the
// rooms' own.
//
// # Emitter events
//
// With the emitter plugin, Room.Send sends an event to a room:
//
//	_ = r.Room("news").Send(em, "headline", text) // em is the server's *emitter.Emitter
//
// # Clusters
//
// Membership lives in the server's memory. On a cluster (package cluster),
// pass the node's *cluster.Cluster as Options.Relay on every node: a write to
// a room then reaches its members on every node — each node with members
// receives the encoded message once and delivers it to its own members —
// while Members, RoomsOf and Rooms keep answering for the node's own sparks.
// With the NATS or Redis backend membership is cluster-wide too:
//
//	r.OnJoin(func(ev rooms.Event) { log.Printf("%s joined %s on node %s", ev.Spark, ev.Room, ev.Node) })
//	ids, err := r.MembersAll(ctx, "lobby")  // every node's members, from the cluster's directory
//	err = r.JoinRemote(ctx, sparkID, "vip") // a spark of any node
//
// Handlers hear of every node's joins and leaves (Event.NodeGone marks the
// members of a node that closed or died), the *All queries answer for every
// node within their context, and a room write goes only to the nodes that
// have members of the room. See package cluster for the consistency: a
// node's own changes at once, the others' within milliseconds, a dead
// node's within its expiry.
package rooms
