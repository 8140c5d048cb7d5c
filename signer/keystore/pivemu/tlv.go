package pivemu

import "errors"

// errTLV reports BER-TLV data the card cannot parse; the card answers
// 6A80 (incorrect data) for it.
var errTLV = errors.New("pivemu: malformed TLV")

// tlv is one BER-TLV element as PIV uses them: a one- or two-byte tag
// (0x7F49, 0x5FC1xx objects are named by value, not by tag) and a short or
// long-form definite length.
type tlv struct {
	tag uint32
	val []byte
}

// parseTLVs splits b into consecutive TLV elements.
func parseTLVs(b []byte) ([]tlv, error) {
	var out []tlv
	for len(b) > 0 {
		tag := uint32(b[0])
		b = b[1:]
		if tag&0x1f == 0x1f {
			if len(b) < 1 || b[0]&0x80 != 0 {
				return nil, errTLV
			}
			tag = tag<<8 | uint32(b[0])
			b = b[1:]
		}
		if len(b) < 1 {
			return nil, errTLV
		}
		n := int(b[0])
		b = b[1:]
		switch {
		case n < 0x80:
		case n == 0x81 && len(b) >= 1:
			n = int(b[0])
			b = b[1:]
		case n == 0x82 && len(b) >= 2:
			n = int(b[0])<<8 | int(b[1])
			b = b[2:]
		default:
			return nil, errTLV
		}
		if len(b) < n {
			return nil, errTLV
		}
		out = append(out, tlv{tag: tag, val: b[:n:n]})
		b = b[n:]
	}
	return out, nil
}

// find returns the value of the first element with tag.
func find(ts []tlv, tag uint32) ([]byte, bool) {
	for _, t := range ts {
		if t.tag == tag {
			return t.val, true
		}
	}
	return nil, false
}

// put encodes one TLV element.
func put(tag uint32, val []byte) []byte {
	var out []byte
	if tag > 0xff {
		out = append(out, byte(tag>>8))
	}
	out = append(out, byte(tag))
	switch n := len(val); {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	default:
		out = append(out, 0x82, byte(n>>8), byte(n))
	}
	return append(out, val...)
}
