package main

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/cluster"
	"github.com/go-primus/primus/rooms"
)

// event is every message of the chat, both ways; unused fields are left
// out. It is examples/chat's, plus the node a browser is connected to and
// the "present" event.
type event struct {
	Type    string   `json:"type"`
	Name    string   `json:"name,omitempty"`
	Room    string   `json:"room,omitempty"`
	Text    string   `json:"text,omitempty"`
	Members []string `json:"members,omitempty"`
	Node    string   `json:"node,omitempty"`
	Count   int      `json:"count,omitempty"` // people in the room, on every node
}

// hello is what a node publishes on the "chat" topic when one of its
// sparks joins a room: the other nodes answer that spark, by id, with the
// names of their own members of the room.
type hello struct {
	Room  string `json:"room"`
	Spark string `json:"spark"`
}

// member is where a connection is in the chat.
type member struct {
	name, room string
}

// chat is one node's part of the chat. Each node knows its own
// connections; rooms and the cluster carry messages between nodes:
//
//   - a room write (joined, left, message) reaches the room's members on
//     every node, encoded once by the node that writes it;
//   - a joiner's member list is its node's members ("welcome"), plus a
//     "present" answer from each other node that has members in the room,
//     written to the joiner's spark id from wherever it is.
type chat struct {
	node  string
	c     *cluster.Cluster
	rooms *rooms.Rooms

	mu      sync.Mutex
	members map[*primus.Spark]member
}

const (
	maxName = 32
	maxText = 500
)

func newChat(node string, srv *primus.Server, c *cluster.Cluster, r *rooms.Rooms) *chat {
	ch := &chat{node: node, c: c, rooms: r, members: map[*primus.Spark]member{}}
	srv.OnConnection(func(sp *primus.Spark) {
		if name, ok := sp.Kept("name"); ok && sp.Moved() {
			// Resumed from another node: the person is back, in their room.
			room, _ := sp.Kept("room")
			ch.mu.Lock()
			ch.members[sp] = member{name, room}
			ch.mu.Unlock()
			log.Printf("%s: %s resumed in %s", ch.node, name, room)
		}
		sp.OnData(func(m *primus.Message) {
			var ev event
			if err := m.Decode(&ev); err != nil {
				_ = sp.Write(event{Type: "error", Text: "messages are {type, …} objects"})
				return
			}
			ch.handle(sp, ev)
		})
		sp.OnEnd(func(reason error) {
			if errors.Is(reason, primus.ErrSparkMoved) || errors.Is(reason, primus.ErrServerClosed) {
				// Resumed, or about to resume, on another node: the person
				// has not left, this node only forgets them.
				ch.mu.Lock()
				delete(ch.members, sp)
				ch.mu.Unlock()
				return
			}
			ch.leave(sp)
		})
	})
	c.Handle("chat", ch.hello)
	return ch
}

func (ch *chat) handle(sp *primus.Spark, ev event) {
	switch ev.Type {
	case "join":
		name := strings.TrimSpace(ev.Name)
		room := strings.TrimSpace(ev.Room)
		if room == "" {
			room = "lobby"
		}
		if name == "" || utf8.RuneCountInString(name) > maxName || utf8.RuneCountInString(room) > maxName {
			_ = sp.Write(event{Type: "error", Text: "pick a name (and a room) of 1 to 32 characters"})
			return
		}
		ch.mu.Lock()
		old, known := ch.members[sp]
		ch.mu.Unlock()
		// The page joins again when it reconnects; a resumed spark is in
		// the room already (on another node too: cluster Recovery), and
		// the others saw no leave: nothing to announce.
		again := known && old == member{name, room}
		if !again {
			ch.leave(sp)
			if err := ch.rooms.Join(sp, room); err != nil {
				return // the connection has ended
			}
			// What this node knows of the person goes with the spark if it
			// resumes on another node.
			_ = sp.Keep("name", name)
			_ = sp.Keep("room", room)
		}
		ch.mu.Lock()
		ch.members[sp] = member{name, room}
		names := ch.namesIn(room)
		ch.mu.Unlock()
		if !again {
			log.Printf("%s: %s joined %s", ch.node, name, room)
		}
		// The room's members on every node, from the cluster's directory
		// (this join included).
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		count, _ := ch.rooms.CountAll(ctx, room)
		cancel()
		_ = sp.Write(event{Type: "welcome", Name: name, Room: room, Members: names, Node: ch.node, Count: count})
		if !again {
			_ = ch.rooms.Room(room).Except(sp.ID()).Write(event{Type: "joined", Name: name, Room: room})
		}
		if b, err := json.Marshal(hello{Room: room, Spark: sp.ID()}); err == nil {
			_ = ch.c.Publish("chat", b)
		}
	case "say":
		ch.mu.Lock()
		m, ok := ch.members[sp]
		ch.mu.Unlock()
		text := strings.TrimSpace(ev.Text)
		switch {
		case !ok:
			_ = sp.Write(event{Type: "error", Text: "join a room first"})
		case text == "" || utf8.RuneCountInString(text) > maxText:
			_ = sp.Write(event{Type: "error", Text: "messages have 1 to 500 characters"})
		default:
			_ = ch.rooms.Room(m.room).Write(event{Type: "message", Name: m.name, Room: m.room, Text: text})
		}
	default:
		_ = sp.Write(event{Type: "error", Text: "unknown message type " + ev.Type})
	}
}

// namesIn returns this node's members of the room, sorted; ch.mu is held.
func (ch *chat) namesIn(room string) []string {
	var names []string
	for _, m := range ch.members {
		if m.room == room {
			names = append(names, m.name)
		}
	}
	slices.Sort(names)
	return names
}

// hello answers another node's joiner with this node's members of the
// room.
func (ch *chat) hello(data []byte) {
	var h hello
	if err := json.Unmarshal(data, &h); err != nil {
		return
	}
	ch.mu.Lock()
	names := ch.namesIn(h.Room)
	ch.mu.Unlock()
	if len(names) > 0 {
		_ = ch.c.WriteTo(h.Spark, event{Type: "present", Room: h.Room, Members: names})
	}
}

// leave takes sp out of its room, if it is in one, and tells the others on
// every node.
func (ch *chat) leave(sp *primus.Spark) {
	ch.mu.Lock()
	m, ok := ch.members[sp]
	delete(ch.members, sp)
	ch.mu.Unlock()
	if ok {
		log.Printf("%s: %s left %s", ch.node, m.name, m.room)
		ch.rooms.Leave(sp, m.room)
		_ = ch.rooms.Room(m.room).Write(event{Type: "left", Name: m.name, Room: m.room})
	}
}
