package testserver

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-primus/primus"
	"github.com/go-primus/primus/emitter"
	"github.com/go-primus/primus/multiplex"
	"github.com/go-primus/primus/plugin"
	"github.com/go-primus/primus/substream"
)

// Plugins are the plugins of the contract's items 9–11 that a test server
// runs; a nil field is a plugin that is off.
type Plugins struct {
	Emitter   *emitter.Emitter
	Multiplex *multiplex.Multiplex
	Substream *substream.Substream
}

// ParsePlugins parses the -plugins flag: a comma-separated subset of
// "emitter", "multiplex" and "substream", or "none" (or "") for none.
func ParsePlugins(list string) (*Plugins, error) {
	p := &Plugins{}
	for _, name := range strings.Split(list, ",") {
		switch strings.TrimSpace(name) {
		case "", "none":
		case "emitter":
			p.Emitter = emitter.New(nil)
		case "multiplex":
			p.Multiplex = multiplex.New(nil)
		case "substream":
			p.Substream = substream.New(nil)
		default:
			return nil, fmt.Errorf("unknown plugin %q (want emitter, multiplex, substream or none)", name)
		}
	}
	return p, nil
}

// List returns the plugins that are on, for primus.Options.Plugins.
func (p *Plugins) List() []plugin.Plugin {
	var list []plugin.Plugin
	if p.Multiplex != nil {
		list = append(list, p.Multiplex)
	}
	if p.Emitter != nil {
		list = append(list, p.Emitter)
	}
	if p.Substream != nil {
		list = append(list, p.Substream)
	}
	return list
}

// Setup installs the behaviour of items 9–11 on srv, which must have been
// built with List():
//
//   - emitter: event "echo" is acknowledged with its arguments; "ping-me" is
//     answered with event "pong" and the same arguments; "ask" sends event
//     "question" with the arguments and an ack callback, and the
//     acknowledgement's arguments come back as event "answer".
//   - multiplex: channel "chat" echoes each message to the same
//     subscription, "news" writes each message to all its subscribers. With
//     the emitter on too, both channels answer the emitter events above
//     over the channel, as the npm plugins do together.
//   - substream: every connection has substream "s1", which echoes; when an
//     end marker ends it, a new "s1" takes its place.
func (p *Plugins) Setup(srv *primus.Server) error {
	if p.Emitter != nil {
		contractEvents(p.Emitter)
	}
	if p.Multiplex != nil {
		chat, news := p.Multiplex.Channel("chat"), p.Multiplex.Channel("news")
		chat.OnConnection(func(cs *multiplex.Spark) {
			cs.OnData(func(m *primus.Message) { _ = cs.Write(m.Raw()) })
		})
		news.OnConnection(func(cs *multiplex.Spark) {
			cs.OnData(func(m *primus.Message) { _ = news.Write(m.Raw()) })
		})
		if p.Emitter != nil {
			for _, ch := range []*multiplex.Channel{chat, news} {
				em := emitter.New(nil)
				if err := ch.Use(em); err != nil {
					return err
				}
				contractEvents(em)
			}
		}
	}
	if p.Substream != nil {
		ss := p.Substream
		srv.OnConnection(func(sp *primus.Spark) { echoStream(ss, sp) })
	}
	return nil
}

// contractEvents registers item 9's events on em.
func contractEvents(em *emitter.Emitter) {
	em.On("echo", func(ev *emitter.Event) { _ = ev.Ack(ev.Args.Raw()...) })
	em.On("ping-me", func(ev *emitter.Event) { _ = em.Send(ev.Spark, "pong", ev.Args.Raw()...) })
	em.On("ask", func(ev *emitter.Event) {
		s := ev.Spark
		_ = em.SendAckFunc(context.Background(), s, "question", func(reply emitter.Args, err error) {
			if err == nil {
				_ = em.Send(s, "answer", reply.Raw()...)
			}
		}, ev.Args.Raw()...)
	})
}

// echoStream opens substream "s1" on sp, echoing, and opens it again when
// the client ends it.
func echoStream(ss *substream.Substream, sp *primus.Spark) {
	var st *substream.Stream
	// An error means that the connection has ended: nothing to do.
	st, _ = ss.Stream(sp, "s1", &substream.StreamOptions{
		OnData: func(m *primus.Message) { _ = st.Write(m.Raw()) },
		OnEnd: func(reason error) {
			if !errors.Is(reason, substream.ErrDisconnected) {
				echoStream(ss, sp)
			}
		},
	})
}
