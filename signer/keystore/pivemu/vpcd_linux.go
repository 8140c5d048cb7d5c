package pivemu

import (
	"net"
	"syscall"
)

// quickAck asks Linux to acknowledge received data at once. vpcd writes a
// message's length and its payload in two sends; with Nagle's algorithm
// on its side and delayed ACKs on ours, the payload would wait ~40 ms for
// the ACK of the length, twice per APDU. The setting does not stick, so
// it is renewed before every read.
func quickAck(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
