package httpguard

import (
	"bytes"
	"fmt"
)

// headState is what ParseHead remembers between header lines.
type headState struct {
	auth                 bool
	tsi, xtsi            bool // Tor-Stream-Isolation / X-Tor-Stream-Isolation seen
	tsiValue, xtsiValue  []byte
	streamOptions        bool // Tor-Stream-Options seen
	connClose, keepAlive bool
}

// header interprets one header line. Names are case-insensitive (RFC 9110
// §5.1).
func (h *Head) header(st *headState, name, value []byte) error {
	switch {
	case asciiEqualFold(name, "Host"):
		h.Hosts++
		h.HostHeader = string(value)
	case asciiEqualFold(name, "Proxy-Authorization"):
		if st.auth {
			return fmt.Errorf("%w: %w: repeated", ErrMalformed, ErrBadAuth)
		}
		st.auth = true
		h.ProxyAuthorization = append([]byte{}, value...)
		if u, p, ok := parseBasic(value); ok {
			h.HasAuth, h.User, h.Pass = true, u, p
		}
	case asciiEqualFold(name, "Tor-Stream-Isolation"):
		if st.tsi {
			return fmt.Errorf("%w: %w: repeated", ErrMalformed, ErrBadIsolation)
		}
		st.tsi, st.tsiValue = true, append([]byte{}, value...)
	case asciiEqualFold(name, "X-Tor-Stream-Isolation"):
		if st.xtsi {
			return fmt.Errorf("%w: %w: repeated", ErrMalformed, ErrBadIsolation)
		}
		st.xtsi, st.xtsiValue = true, append([]byte{}, value...)
	case asciiEqualFold(name, "Tor-Stream-Options"):
		if st.streamOptions {
			return fmt.Errorf("%w: %w: repeated", ErrMalformed, ErrBadStreamOptions)
		}
		st.streamOptions = true
		h.HasStreamOptions, h.StreamOptions = true, append([]byte{}, value...)
	case hasPrefixFold(name, "Tor-") || hasPrefixFold(name, "X-Tor-"):
		h.TorHeaders = append(h.TorHeaders, Field{Name: string(name), Value: string(value)})
	case asciiEqualFold(name, "Connection"):
		for _, opt := range bytes.Split(value, []byte(",")) {
			opt = bytes.Trim(opt, " \t")
			st.connClose = st.connClose || asciiEqualFold(opt, "close")
			st.keepAlive = st.keepAlive || asciiEqualFold(opt, "keep-alive")
		}
	case asciiEqualFold(name, "Content-Length"):
		h.HasBody = h.HasBody || len(bytes.TrimLeft(value, "0")) > 0 || len(value) == 0
	case asciiEqualFold(name, "Transfer-Encoding"):
		h.HasBody = true
	}
	return nil
}

// finish settles what needs the whole head.
func (h *Head) finish(st *headState) error {
	switch {
	case st.tsi && st.xtsi && !bytes.Equal(st.tsiValue, st.xtsiValue):
		return fmt.Errorf("%w: %w: Tor-Stream-Isolation and X-Tor-Stream-Isolation differ", ErrMalformed, ErrBadIsolation)
	case st.tsi:
		h.HasStreamIsolation, h.StreamIsolation = true, st.tsiValue
	case st.xtsi:
		h.HasStreamIsolation, h.StreamIsolation, h.StreamIsolationLegacy = true, st.xtsiValue, true
	}
	switch h.Proto {
	case "HTTP/1.0":
		h.Persistent = st.keepAlive && !st.connClose
	default:
		h.Persistent = !st.connClose
	}
	return nil
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && asciiEqualFold(b[:len(prefix)], prefix)
}
