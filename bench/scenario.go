package bench

import (
	"fmt"
	"time"
)

// Kind is what a scenario does.
type Kind string

const (
	// Echo is closed-loop echo: each connection writes a message and waits
	// for it to come back before writing the next.
	Echo Kind = "echo"
	// Pipeline is echo with a window of messages in flight per connection.
	Pipeline Kind = "pipeline"
	// Broadcast has one connection ask the server to broadcast a message to
	// every connection (itself included), and measures the time until the
	// last receiver has it; Window broadcasts are in flight at a time.
	Broadcast Kind = "broadcast"
	// Idle opens Conns connections, lets each exchange one message, and
	// reads the server's memory; then it measures Broadcasts broadcasts
	// across all of them, one at a time.
	Idle Kind = "idle"
)

// Scenario is one measurement. The zero values of the optional fields mean
// the defaults documented on them.
type Scenario struct {
	Name  string
	Kind  Kind
	Conns int
	// Size is the size of each data message on the wire, the JSON string
	// included (64 means 62 characters between the quotes). Default 64.
	Size int
	// Window is the number of messages in flight per connection (Pipeline)
	// or of broadcasts in flight (Broadcast). Default 1.
	Window int
	// Warmup runs before the measured Duration (Echo, Pipeline, Broadcast).
	Warmup   time.Duration
	Duration time.Duration
	// Broadcasts is the number of broadcasts measured after an Idle
	// scenario's memory reading. Default 20.
	Broadcasts int
	// MaxMessages bounds the messages a scenario sends however fast the
	// server is. Default 50 million.
	MaxMessages int64
}

func (s Scenario) withDefaults() Scenario {
	if s.Size == 0 {
		s.Size = 64
	}
	if s.Window == 0 {
		s.Window = 1
	}
	if s.Broadcasts == 0 {
		s.Broadcasts = 20
	}
	if s.MaxMessages == 0 {
		s.MaxMessages = 50_000_000
	}
	return s
}

// Describe is a short human description of the scenario's shape.
func (s Scenario) Describe() string {
	s = s.withDefaults()
	switch s.Kind {
	case Echo:
		return fmt.Sprintf("closed-loop echo, %d conn, %s msgs", s.Conns, sizeString(s.Size))
	case Pipeline:
		return fmt.Sprintf("pipelined echo, %d conn × %d in flight, %s msgs", s.Conns, s.Window, sizeString(s.Size))
	case Broadcast:
		return fmt.Sprintf("broadcast to %d conn, %d in flight, %s msgs", s.Conns, s.Window, sizeString(s.Size))
	case Idle:
		return fmt.Sprintf("%d idle conn, then %d broadcasts to all", s.Conns, s.Broadcasts)
	}
	return string(s.Kind)
}

func sizeString(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

// FullScenarios are the scenarios of the comparison; idle is the number of
// idle connections (the target is 19,800).
func FullScenarios(d time.Duration, idle int) []Scenario {
	w := d / 5
	return []Scenario{
		{Name: "echo-1", Kind: Echo, Conns: 1, Warmup: w, Duration: d},
		{Name: "echo-100", Kind: Echo, Conns: 100, Warmup: w, Duration: d},
		{Name: "echo-1000", Kind: Echo, Conns: 1000, Warmup: w, Duration: d},
		{Name: "echo-10x64KiB", Kind: Echo, Conns: 10, Size: 64 << 10, Warmup: w, Duration: d},
		{Name: "pipeline-10x64", Kind: Pipeline, Conns: 10, Window: 64, Warmup: w, Duration: d},
		{Name: "broadcast-1000", Kind: Broadcast, Conns: 1000, Warmup: w, Duration: d},
		{Name: fmt.Sprintf("idle-%d", idle), Kind: Idle, Conns: idle, Broadcasts: 20},
	}
}

// SmokeScenarios are every scenario of FullScenarios, shortened to a second
// each, with 1000 idle connections: enough to exercise every code path of
// the tool.
func SmokeScenarios() []Scenario {
	s := FullScenarios(time.Second, 1000)
	for i := range s {
		s[i].Warmup = 200 * time.Millisecond
		if s[i].Kind == Idle {
			s[i].Broadcasts = 5
		}
	}
	return s
}
