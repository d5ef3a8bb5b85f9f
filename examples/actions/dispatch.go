package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
)

// Role orders what a user may do; each role may do what the ones below it
// may.
type Role int

const (
	Anonymous Role = iota
	RoleUser
	Admin
	SuperAdmin
)

func (r Role) String() string {
	switch r {
	case RoleUser:
		return "user"
	case Admin:
		return "Admin"
	case SuperAdmin:
		return "SuperAdmin"
	}
	return "anonymous"
}

func (r Role) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// Action is what the browser sends: {id, type, payload}. The id is the
// browser's, echoed in the reply so it can match replies to actions.
type Action struct {
	ID      int             `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// Reply answers one action: ok with a result, or an error message.
type Reply struct {
	ID     int    `json:"id"`
	Type   string `json:"type"`
	OK     bool   `json:"ok"`
	Result any    `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

// HandlerFunc carries out one action for user u (nil when anonymous).
type HandlerFunc func(ctx context.Context, u *User, payload json.RawMessage) (any, error)

type route struct {
	role Role
	h    HandlerFunc
}

// Dispatcher routes actions by type to their handlers, after checking that
// the user has the role the action needs: an action the user may not take
// is answered with an error and never reaches its handler.
type Dispatcher struct {
	routes map[string]route
}

func NewDispatcher() *Dispatcher { return &Dispatcher{routes: map[string]route{}} }

// Handle registers h for actions of type typ, for users with at least role
// (Anonymous: everybody).
func (d *Dispatcher) Handle(typ string, role Role, h HandlerFunc) {
	d.routes[typ] = route{role, h}
}

// Dispatch runs one action and returns the reply.
func (d *Dispatcher) Dispatch(ctx context.Context, u *User, a Action) Reply {
	reply := Reply{ID: a.ID, Type: a.Type}
	rt, ok := d.routes[a.Type]
	if !ok {
		reply.Error = fmt.Sprintf("unknown action %q", a.Type)
		return reply
	}
	if err := allowed(u, a.Type, rt.role); err != nil {
		log.Printf("refused %s for %s: %v", a.Type, who(u), err)
		reply.Error = err.Error()
		return reply
	}
	result, err := rt.h(ctx, u, a.Payload)
	if err != nil {
		reply.Error = err.Error()
		return reply
	}
	reply.OK, reply.Result = true, result
	return reply
}

// allowed explains why u may not take an action that needs role.
func allowed(u *User, typ string, role Role) error {
	switch {
	case role == Anonymous:
		return nil
	case u == nil:
		return fmt.Errorf("not allowed: log in to %s", typ)
	case u.Role < role:
		return fmt.Errorf("forbidden: %s needs the %s role, and %s is %s", typ, role, u.Name, article(u.Role))
	}
	return nil
}

func article(r Role) string {
	if r == Admin || r == Anonymous {
		return "an " + r.String()
	}
	return "a " + r.String()
}

func who(u *User) string {
	if u == nil {
		return "anonymous"
	}
	return u.Name
}
