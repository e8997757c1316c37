package isolation

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// errProcNetLine is returned for a /proc/net/tcp line that does not have
// the kernel's shape. Sentinel errors of the app lookup sit in app.go.
var errProcNetLine = errors.New("isolation: malformed /proc/net/tcp line")

// tcpEntry is one socket row of /proc/net/tcp or /proc/net/tcp6.
type tcpEntry struct {
	Local, Remote netip.AddrPort
	State         uint8
	UID           uint32
	Inode         uint64
}

// parseTCPLine parses one row of /proc/net/tcp{,6} (the kernel's
// tcp4_seq_show / tcp6_seq_show):
//
//	sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
//	0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 12345 1 ...
//
// An address is printed as 32-bit words with %08X, each word being the
// address bytes as they lie in memory read as a host-order integer, so on
// a little-endian machine 127.0.0.1 prints as 0100007F; order is that host
// byte order. Ports are printed after ntohs, so they read as plain hex.
// The header line and anything else malformed return errProcNetLine.
func parseTCPLine(line []byte, order binary.ByteOrder) (tcpEntry, error) {
	f := bytes.Fields(line)
	if len(f) < 10 || !bytes.HasSuffix(f[0], []byte(":")) {
		return tcpEntry{}, errProcNetLine
	}
	var e tcpEntry
	var err error
	if e.Local, err = parseProcAddrPort(f[1], order); err != nil {
		return tcpEntry{}, err
	}
	if e.Remote, err = parseProcAddrPort(f[2], order); err != nil {
		return tcpEntry{}, err
	}
	if e.Local.Addr().BitLen() != e.Remote.Addr().BitLen() {
		return tcpEntry{}, errProcNetLine
	}
	st, err := strconv.ParseUint(string(f[3]), 16, 8)
	if err != nil {
		return tcpEntry{}, fmt.Errorf("%w: state: %v", errProcNetLine, err)
	}
	e.State = uint8(st)
	uid, err := strconv.ParseUint(string(f[7]), 10, 32)
	if err != nil {
		return tcpEntry{}, fmt.Errorf("%w: uid: %v", errProcNetLine, err)
	}
	e.UID = uint32(uid)
	if e.Inode, err = strconv.ParseUint(string(f[9]), 10, 64); err != nil {
		return tcpEntry{}, fmt.Errorf("%w: inode: %v", errProcNetLine, err)
	}
	return e, nil
}

// parseProcAddrPort parses "0100007F:0CEA" (IPv4, 8 hex digits) or the
// 32-digit IPv6 form.
func parseProcAddrPort(s []byte, order binary.ByteOrder) (netip.AddrPort, error) {
	i := bytes.IndexByte(s, ':')
	if i < 0 || len(s)-i-1 != 4 {
		return netip.AddrPort{}, errProcNetLine
	}
	hexAddr, hexPort := s[:i], s[i+1:]
	port, err := strconv.ParseUint(string(hexPort), 16, 16)
	if err != nil {
		return netip.AddrPort{}, errProcNetLine
	}
	var raw [16]byte
	n := len(hexAddr) / 2
	if len(hexAddr) != 8 && len(hexAddr) != 32 {
		return netip.AddrPort{}, errProcNetLine
	}
	for w := 0; w < n/4; w++ {
		v, err := strconv.ParseUint(string(hexAddr[w*8:w*8+8]), 16, 32)
		if err != nil {
			return netip.AddrPort{}, errProcNetLine
		}
		order.PutUint32(raw[w*4:], uint32(v))
	}
	var a netip.Addr
	if n == 4 {
		a = netip.AddrFrom4([4]byte(raw[:4]))
	} else {
		a = netip.AddrFrom16(raw)
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// formatProcAddrPort is the inverse of parseProcAddrPort, used by the tests
// and the fuzz target's round trip.
func formatProcAddrPort(ap netip.AddrPort, order binary.ByteOrder) string {
	raw := ap.Addr().AsSlice()
	var b []byte
	for w := 0; w+4 <= len(raw); w += 4 {
		b = fmt.Appendf(b, "%08X", order.Uint32(raw[w:]))
	}
	return fmt.Sprintf("%s:%04X", b, ap.Port())
}
