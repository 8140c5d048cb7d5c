//go:build !linux

package pivemu

import "net"

// quickAck is Linux-only (see vpcd_linux.go); elsewhere APDUs are slower.
func quickAck(net.Conn) {}
