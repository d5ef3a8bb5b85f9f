package main

import (
	"log"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-primus/primus"
)

// event is every message of the chat, both ways; unused fields are left
// out.
type event struct {
	Type    string   `json:"type"`
	Name    string   `json:"name,omitempty"`
	Room    string   `json:"room,omitempty"`
	Text    string   `json:"text,omitempty"`
	Members []string `json:"members,omitempty"`
}

// member is where a connection is in the chat.
type member struct {
	name, room string
}

// chat keeps the rooms: who is where, by spark.
type chat struct {
	srv *primus.Server

	mu      sync.Mutex
	members map[*primus.Spark]member
}

const (
	maxName = 32
	maxText = 500
)

func newChat(srv *primus.Server) *chat {
	c := &chat{srv: srv, members: map[*primus.Spark]member{}}
	srv.OnConnection(func(sp *primus.Spark) {
		sp.OnData(func(m *primus.Message) {
			var ev event
			if err := m.Decode(&ev); err != nil {
				_ = sp.Write(event{Type: "error", Text: "messages are {type, …} objects"})
				return
			}
			c.handle(sp, ev)
		})
		sp.OnEnd(func(error) { c.leave(sp) })
	})
	return c
}

func (c *chat) handle(sp *primus.Spark, ev event) {
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
		c.leave(sp)
		c.mu.Lock()
		c.members[sp] = member{name, room}
		var names []string
		for _, m := range c.members {
			if m.room == room {
				names = append(names, m.name)
			}
		}
		c.mu.Unlock()
		slices.Sort(names)
		log.Printf("%s joined %s", name, room)
		_ = sp.Write(event{Type: "welcome", Name: name, Room: room, Members: names})
		c.toRoom(room, sp, event{Type: "joined", Name: name, Room: room})
	case "say":
		c.mu.Lock()
		m, ok := c.members[sp]
		c.mu.Unlock()
		text := strings.TrimSpace(ev.Text)
		switch {
		case !ok:
			_ = sp.Write(event{Type: "error", Text: "join a room first"})
		case text == "" || utf8.RuneCountInString(text) > maxText:
			_ = sp.Write(event{Type: "error", Text: "messages have 1 to 500 characters"})
		default:
			c.toRoom(m.room, nil, event{Type: "message", Name: m.name, Room: m.room, Text: text})
		}
	default:
		_ = sp.Write(event{Type: "error", Text: "unknown message type " + ev.Type})
	}
}

// leave takes sp out of its room, if it is in one, and tells the others.
func (c *chat) leave(sp *primus.Spark) {
	c.mu.Lock()
	m, ok := c.members[sp]
	delete(c.members, sp)
	c.mu.Unlock()
	if ok {
		log.Printf("%s left %s", m.name, m.room)
		c.toRoom(m.room, sp, event{Type: "left", Name: m.name, Room: m.room})
	}
}

// toRoom writes ev to every member of room except skip.
func (c *chat) toRoom(room string, skip *primus.Spark, ev event) {
	c.mu.Lock()
	var to []*primus.Spark
	for sp, m := range c.members {
		if m.room == room && sp != skip {
			to = append(to, sp)
		}
	}
	c.mu.Unlock()
	for _, sp := range to {
		_ = sp.Write(ev) // a slow member is disconnected, never waited for
	}
}
