package websocket

import (
	"net"
	"syscall"
	"unsafe"
)

// sendSpace tells whether a write fits in the socket's send buffer, from
// the kernel's own accounting (SO_MEMINFO: the memory queued for sending,
// acknowledged or not, and the buffer's size), so that the core can write
// from the goroutine that wrote a message without ever making it wait for
// the peer. The answer is kept and spent by each write, so that most writes
// cost no system call: the kernel only frees space, so a kept answer errs
// towards false.
type sendSpace struct {
	rc   syscall.RawConn
	free int // bytes of send buffer known to be free
}

// soMeminfo is SO_MEMINFO (Linux 3.18+); the reply is an array of uint32
// indexed by the SK_MEMINFO_* constants.
const (
	soMeminfo        = 55
	skMeminfoSndbuf  = 3
	skMeminfoWmemQ   = 5
	skMeminfoEntries = 9
)

// writeCost is what a write of n bytes takes of the send buffer: its bytes
// and the kernel's per-buffer bookkeeping, generously (a small write takes
// one socket buffer, about 1 KiB of overhead; a large one one per 16 KiB
// or so), plus the frame header.
func writeCost(n int) int { return n + n/8 + 2048 }

// controlSlack is kept free for the frames the WebSocket library writes by
// itself (pongs, the close frame), which this accounting does not see.
const controlSlack = 4096

func newSendSpace(c net.Conn) *sendSpace {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return &sendSpace{rc: rc}
}

func (s *sendSpace) writable(n int) bool {
	need := writeCost(n)
	if s.free >= need {
		return true
	}
	var info [skMeminfoEntries]uint32
	size := uint32(unsafe.Sizeof(info))
	var errno syscall.Errno
	err := s.rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_SOCKET, soMeminfo,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	})
	if err != nil || errno != 0 || size < (skMeminfoWmemQ+1)*4 {
		s.free = 0
		return false
	}
	s.free = int(info[skMeminfoSndbuf]) - int(info[skMeminfoWmemQ]) - controlSlack
	return s.free >= need
}

// wrote spends what a write of n bytes took.
func (s *sendSpace) wrote(n int) { s.free -= writeCost(n) }
