//go:build !linux

package websocket

import "net"

// sendSpace is Linux-only (SO_MEMINFO); elsewhere every message goes through
// the core's writer goroutine.
type sendSpace struct{}

func newSendSpace(net.Conn) *sendSpace { return nil }
func (*sendSpace) writable(int) bool   { return false }
func (*sendSpace) wrote(int)           {}
