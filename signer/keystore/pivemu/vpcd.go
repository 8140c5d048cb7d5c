package pivemu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// DefaultVPCDAddr is where vpcd waits for the card of its first reader
// ("Virtual PCD 00 00"): Debian's /etc/reader.conf.d/vpcd sets CHANNELID
// 0x8C7B = 35963. The second reader ("Virtual PCD 00 01") listens on the
// next port.
const DefaultVPCDAddr = "127.0.0.1:35963"

// vpcd control messages: one-byte payloads from the reader driver. Only
// the ATR request is answered.
const (
	vpcdPowerOff = 0x00
	vpcdPowerOn  = 0x01
	vpcdReset    = 0x02
	vpcdATR      = 0x04
)

// Serve inserts the card into the vpcd reader listening at addr and
// answers it until ctx ends (the card is then pulled out) or the
// connection fails. vpcd's protocol frames every message with a two-byte
// big-endian length; a one-byte message is a control (power off, power
// on, reset, get ATR), anything longer a command APDU to answer with a
// response APDU.
func (c *Card) Serve(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("pivemu: connecting to vpcd: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c.setPowered(false)
	err = c.serveConn(ackingConn{conn})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// ackingConn renews quickAck before each read.
type ackingConn struct{ net.Conn }

func (a ackingConn) Read(p []byte) (int, error) {
	quickAck(a.Conn)
	return a.Conn.Read(p)
}

func (c *Card) serveConn(rw io.ReadWriter) error {
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(rw, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("pivemu: vpcd: %w", err)
		}
		msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(rw, msg); err != nil {
			return fmt.Errorf("pivemu: vpcd: %w", err)
		}
		var resp []byte
		switch {
		case len(msg) == 0:
			continue
		case len(msg) == 1:
			switch msg[0] {
			case vpcdPowerOff:
				c.PowerOff()
			case vpcdPowerOn, vpcdReset:
				c.PowerOff()
				c.setPowered(true)
			case vpcdATR:
				resp = ATR()
			}
		default:
			resp = c.Transmit(msg)
		}
		if resp == nil {
			continue
		}
		out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(resp)), uint16(len(resp)))
		if _, err := rw.Write(append(out, resp...)); err != nil {
			return fmt.Errorf("pivemu: vpcd: %w", err)
		}
	}
}
