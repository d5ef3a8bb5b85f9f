// Package cluster makes several primus servers, in several processes behind
// a load balancer, one logical server: a broadcast, a room write (package
// rooms) and a write to one spark id reach the right clients whichever node
// holds them, and the registry counts the sparks of the whole cluster.
//
// A node is a primus.Server plus a Cluster, which needs a Broker
// (publish/subscribe between nodes) and a Registry (which node holds which
// spark, with entries that expire). Two backends provide both: cluster/nats
// (NATS, with JetStream for the registry) and cluster/redis (Redis pub/sub
// and keys with an expiry).
//
//	srv, _ := primus.New(nil)
//	b, _ := nats.Connect("nats://127.0.0.1:4222", nil) // or redis.Connect("redis://127.0.0.1:6379", nil)
//	c, err := cluster.New(srv, &cluster.Options{Broker: b, Registry: b})
//	if err != nil {
//		log.Fatal(err)
//	}
//	r := rooms.New(srv, &rooms.Options{Relay: c}) // rooms across the cluster
//
//	_ = c.Write("to everyone, on every node")
//	_ = c.WriteTo(sparkID, "to one spark, wherever it is")
//	_ = r.Room("lobby").Write("to the lobby, on the nodes with members")
//	n, _ := c.Count(ctx)                // sparks in the whole cluster
//	ids, _ := r.MembersAll(ctx, "lobby") // the lobby's members on every node
//	_ = c.Disconnect(ctx, sparkID)       // end a spark, wherever it is
//
// and at shutdown c.Close(ctx) (the node leaves the registry at once), then
// srv.Shutdown(ctx) and b.Close(). srv.Write stays local to the node.
//
// # Delivery
//
// A write encodes its message once, with the server's parser, and delivers
// it to the node's own sparks at once. The encoded bytes go to the other
// nodes through the broker, once per node, and each passes them to its
// sparks as a primus.Raw, without encoding again. All nodes must therefore
// use the same parser. A write to a spark id goes straight to the spark
// when this node holds it; otherwise the registry is asked which node does,
// and the message is published to that node alone — or to every node, when
// the registry does not know the spark yet (its node registers it a moment
// after it connects) or cannot be asked, and the node that holds it
// delivers it.
//
// Writes never wait for the broker: the messages for other nodes go into a
// queue bounded in bytes (Options.QueueBytes), which one goroutine
// publishes, in order, each call bounded by Options.Timeout. When the queue
// is full a write still reaches the node's own sparks and returns
// ErrQueueFull.
//
// Delivery between nodes is at most once, and in order for the messages of
// one node on one channel (broadcasts, topics and room writes to every node
// share one; writes to one node's sparks, and room writes to the nodes with
// members, go on each node's own channel).
//
// # Outages, and what is lost
//
// When the broker is unreachable or restarts, with the default pub/sub
// channels:
//
//   - every node keeps delivering its own writes to its own sparks;
//   - messages for other nodes written meanwhile are lost: each publish
//     fails (NATS at once, Redis once its client has given up dialling,
//     about half a second) and its messages are dropped, counted in
//     Stats.Dropped and reported. So are messages in flight when the
//     connection broke, and those published after the broker is back but
//     before a receiving node has subscribed again;
//   - writes to a spark on another node go to every node while the
//     registry cannot be asked (a registry on another server than the
//     broker), and are lost with the rest while the broker is away;
//   - the failure is reported through Options.OnError and the logger when
//     it starts, at most once a second while it lasts, and its end is
//     logged with the number of messages lost;
//   - the backends reconnect by themselves and renew their subscriptions;
//     the registry is synced again (it may have been emptied by a restart)
//     within Expiry/3, sooner after a failed sync; from then on delivery
//     across nodes, counts and lookups are whole again.
//
// Nothing is replayed then. With durable channels (a DurableBroker: the
// Durable option of cluster/nats, a JetStream stream, or of cluster/redis,
// Redis Streams) every message between nodes is one stream entry, each
// node reads from the last entry it delivered, and a node cut off from the
// broker catches up when it is back; writes made meanwhile wait in the
// queue and are published, in order, when it is back, numbered so that
// the copies a retried publish makes are dropped (Stats.Duplicates). What
// is still lost is counted: writes that do not fit in the queue
// (Stats.Dropped), entries the stream trimmed before a node read them
// (Stats.Gaps), and what the broker itself did not keep across a restart.
//
// Resumable connections (primus.Options.Recovery) work on each node; with
// Options.Recovery they work across nodes too (next section).
//
// # Recovery on any node
//
// With Options.Recovery (and primus.Options.Recovery on every server, and
// a backend with its Durable option, which is a Journal and a
// SessionStore), a client whose node dies, or that the load balancer sends
// to another node, resumes its spark on the node it reaches: same id, same
// rooms, and every message written to it — by its own node, by a
// broadcast, by a write to its id or to one of its rooms, from any node —
// delivered once and in order, then new ones. The messages it wrote that
// its spark had not received are written again by the client.
//
//	srv, _ := primus.New(&primus.Options{Recovery: &primus.Recovery{}})
//	b, _ := nats.Connect(url, &nats.Options{Durable: &nats.Durability{}})
//	c, _ := cluster.New(srv, &cluster.Options{Broker: b, Registry: b, Recovery: true})
//	r := rooms.New(srv, &rooms.Options{Relay: c})
//
// How: every message for a spark of the cluster is one entry of the
// journal, a durable stream shared by every node (a JetStream stream, a
// Redis Stream) — one entry per message, however many sparks receive it:
// a spark's Write, the server's Write, the cluster's Write and WriteTo, a
// room's Write — and so are the sparks' room joins and leaves. Each node
// follows the journal and delivers each entry to its own sparks, in the
// journal's order, this node's own writes included: a write reaches its
// spark after a round trip to the broker, not at once, and while the
// broker is away no spark receives anything: writes wait in the node's
// queue (QueueBytes; over it they fail with ErrQueueFull) and are
// delivered, in order, once it is back. For each resumable
// spark the node stores a checkpoint in the session store, under the
// spark's resume credentials, with the registry's expiry discipline
// (primus.Recovery.Window plus Expiry, refreshed while the node lives):
// how many messages the client confirmed and the journal offset of the
// last of them, the spark's rooms there, and how many messages the spark
// had received from the client. A node that gets a credential it does not
// know takes the checkpoint (one node gets it), asks the node that held
// the spark, if it answers within a second, to give it up (the spark ends
// there with primus.ErrSparkMoved; the node answers with an exact
// checkpoint once its own writes are in the journal), reads the journal
// from the checkpoint on, once for every resume under way, skips what the
// client has and writes it the rest.
//
// A spark resumed on another node is a new *primus.Spark with the old id
// (Spark.Moved reports true): the connection handlers run again, since
// handlers and context values lived in the other process; it is back in
// its rooms before they run. Plugin state (emitter acknowledgements,
// multiplex channels, substreams) does not move: those are the other
// process's.
//
// A rolling deploy: on each node in turn, srv.ShutdownReconnect(ctx) (the
// clients reconnect through the load balancer and resume on the other
// nodes, which ask this one for their sparks; it also stores each closed
// spark's last checkpoint at once, once what its handlers wrote is in the
// journal, for a node whose question comes too late), then c.Close(ctx),
// which waits for the resumes it is serving (one that cannot finish puts
// its checkpoint back, and its client tries again elsewhere), appends what
// is queued and stores the last checkpoints, then b.Close() and the
// process exits. Nothing is lost or repeated either way. A resume that
// fails for a reason that is not about the spark (the broker is slow, the
// node closes) closes the connection, and the client tries again, rather
// than getting a new spark.
//
// What a node that dies (killed, or cut off from the broker for good)
// takes with it:
//
//   - the writes it had taken but not appended to the journal yet (its
//     queue: normally what was written in the last milliseconds);
//   - the count of messages received from each client since the client
//     last confirmed what it received (every 64 messages and every
//     heartbeat): the client writes those again, and the node where it
//     resumes receives them a second time — at least once, not exactly
//     once, for those;
//   - the resumes it was serving at the time: their clients try again.
//
// And the journal's limits (Durability) bound how far back a resume can
// go: a client whose checkpoint is older than what the journal keeps gets
// a new spark (ErrRecoveryUnknown), as does one whose credential was issued
// within the last moment before its node died (it may not be stored yet).
// A resume after a node died waits up to a second for that node's answer
// before it takes the stored checkpoint (the node is then taken for dead
// for Expiry): the 1,000 clients of a killed node resume on two others in
// 2.3–3 s, the first after 1.2 s (BenchmarkRecovery in
// cluster/internal/crossnode). Without a spark to resume, a client's resume
// costs one read of the session store.
//
// # Registry
//
// Each node refreshes its registry entries every Expiry/3 with the whole
// list of its sparks, and updates them between refreshes as sparks come and
// go. A node that dies stops refreshing, and its entries — the node and all
// its sparks — expire within Options.Expiry (15 s by default), removed by
// the backend's server, so no ghost node or spark remains. A node that
// closes removes them at once. Count adds this node's sparks to those the
// registry holds for the others; it lags a connection or disconnection on
// another node by the time that node takes to update the registry
// (milliseconds).
//
// # Presence
//
// A Registry that is also a Directory (both backends) keeps room membership
// too, with the registry's expiry discipline: Cluster.Presence, which
// package rooms calls for itself, records the node's memberships there,
// sends its joins and leaves, numbered, to every node, and delivers the
// other nodes' to the rooms (their OnJoin and OnLeave handlers), the leaves
// of a node that closed at once and those of a node that died once it has
// left the registry and been silent for Expiry. A node that misses some
// events (a broker outage) notices the gap — at the sender's next change,
// or its digest every Expiry/3 — and reads that node's memberships whole
// from the directory. From the events each node knows which nodes have
// members of which room, and Presence.Publish sends a room's writes to
// those nodes alone (to every node while it is not sure). The queries
// (MembersAll, CountAll, RoomsOfAll, RoomsAll) ask the directory, within
// their context and Options.Timeout.
//
// Disconnect, Reconnect and Presence's JoinRemote and LeaveRemote act on a
// spark by id wherever it is: the registry names its node, which is asked
// on its own channel and answers on the asker's.
//
// # Topics
//
// Publish and Handle carry an application's own messages between the nodes'
// server code, under a topic name, and PublishTo to one node; package rooms
// uses the topic "primus.rooms", the presence "primus.presence" and
// "primus.presence.rpc". examples/cluster uses one to tell a newcomer who is
// already in a room on the other nodes.
//
// # Load balancers and sticky sessions
//
// A WebSocket connection lives on one node for its whole life, so any load
// balancer works with transport/websocket. SockJS's fallback transports
// (xhr-polling, xhr-streaming, eventsource, htmlfile, jsonp) send each
// session's requests separately, and all of them must reach the node that
// holds the session: route by client (IP hash, or the JSESSIONID cookie of
// sockjs.Options.JSessionID) when clients may fall back from WebSocket.
package cluster
