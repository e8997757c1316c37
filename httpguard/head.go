package httpguard

import (
	"bytes"
	"errors"
	"fmt"
)

// MaxHead bounds a request head: request line, headers and the blank line
// that ends them. A head still unfinished at this size is refused.
const MaxHead = 8 << 10

// Sentinel errors; test with errors.Is.
var (
	// ErrShortBuffer means the head is incomplete: keep the bytes, read
	// more, call ParseHead again with the longer buffer.
	ErrShortBuffer = errors.New("httpguard: short buffer")
	// ErrHeadTooLarge means MaxHead bytes arrived without the end of the
	// head. Answer 431 (or 400) and close.
	ErrHeadTooLarge = errors.New("httpguard: request head too large")
	// ErrMalformed is any request that is not valid HTTP/1.x as far as
	// socksd needs to read it. Answer 400 and close. ErrBadTarget and
	// ErrBadAuth refine it (errors.Is(err, ErrMalformed) holds for both).
	ErrMalformed = errors.New("httpguard: malformed request")
	// ErrBadTarget is a CONNECT target that is not host:port with a valid
	// host and a port in 1-65535.
	ErrBadTarget = errors.New("httpguard: bad CONNECT target")
	// ErrBadAuth is a repeated Proxy-Authorization header: which of the
	// two would be the client's identity?
	ErrBadAuth = errors.New("httpguard: bad Proxy-Authorization")
	// ErrBadIsolation is a repeated Tor-Stream-Isolation (or
	// X-Tor-Stream-Isolation) header, or both names with different values:
	// the client's isolation would be a guess.
	ErrBadIsolation = errors.New("httpguard: bad Tor-Stream-Isolation")
	// ErrBadStreamOptions is a repeated Tor-Stream-Options header: which
	// options the client asked for would be a guess. (Its value is the
	// caller's to validate, with the SOCKS forms' parser.)
	ErrBadStreamOptions = errors.New("httpguard: repeated Tor-Stream-Options")
)

// Field is one request header line, name as sent, value OWS-trimmed.
type Field struct {
	Name, Value string
}

// Head is a parsed request head.
type Head struct {
	Method string // a token; "CONNECT" is case-sensitive (RFC 9110 §9.1)
	Target string // the request-target as sent
	Proto  string // "HTTP/1.1", "HTTP/1.0", ...

	// IsConnect: the method is CONNECT and Target is a valid authority,
	// split into Host (brackets stripped from an IPv6 literal; may be an
	// IP literal, check with netip.ParseAddr) and Port (1-65535).
	IsConnect bool
	Host      string
	Port      uint16

	// ProxyAuthorization is the raw value of the Proxy-Authorization
	// header (at most one is allowed); nil without one. HasAuth, User and
	// Pass are its credentials when it is a well-formed Basic credential
	// (RFC 7617): isolation data, as in C Tor's HTTPTunnelPort, never
	// access control; they may be empty. Any other value (another scheme,
	// bad base64) is kept here only: C Tor isolates on the raw value, and
	// proposal 365 keeps that for compatibility.
	ProxyAuthorization []byte
	HasAuth            bool
	User               []byte
	Pass               []byte

	// StreamIsolation is the client's isolation token from
	// Tor-Stream-Isolation or, when only that was sent, the deprecated
	// X-Tor-Stream-Isolation (proposal 365: "X-Tor-" names are historical,
	// RFC 6648); StreamIsolationLegacy says which. Raw bytes, may be empty.
	HasStreamIsolation    bool
	StreamIsolation       []byte
	StreamIsolationLegacy bool

	// StreamOptions is the raw value of the Tor-Stream-Options header
	// (at most one is allowed): the per-stream options as a pt-spec
	// argument list "k=v;k=v", the syntax of the SOCKS forms, which the
	// caller parses and validates with socksproto.ParseArgs.
	HasStreamOptions bool
	StreamOptions    []byte

	// TorHeaders are the other request headers named Tor-* or X-Tor-*
	// (case-insensitively), in order. socksd's CONNECT does not act on
	// them: a header a later proposal defines is ignored rather than
	// refused, as C Tor and Arti ignore the ones they do not know, so a
	// client written for a newer proxy still gets its tunnel.
	TorHeaders []Field

	// HostHeader is the Host header's value and Hosts the number of Host
	// lines: a non-CONNECT request is answered only when it is addressed
	// to this machine (see AddressedToProxy).
	HostHeader string
	Hosts      int

	// HasBody: the request announces a body (Content-Length other than 0,
	// or any Transfer-Encoding).
	HasBody bool
	// Persistent: the client keeps the connection open after the response
	// (RFC 9112 §9.3: HTTP/1.1 unless "Connection: close", HTTP/1.0 only
	// with "Connection: keep-alive").
	Persistent bool
}

// IsHTTP reports whether a connection whose first byte is first should be
// treated as HTTP: every HTTP method starts with an ASCII letter, and no
// SOCKS version byte (4, 5) is one.
func IsHTTP(first byte) bool {
	return 'A' <= first && first <= 'Z' || 'a' <= first && first <= 'z'
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// ParseHead parses the request head at the start of in, which must hold
// every byte the client has sent so far. On success it returns the head and
// its length n: in[n:] is data the client sent after the head (for CONNECT,
// optimistic data for the tunnel).
//
// Lines end with CRLF or, leniently, a bare LF (RFC 9112 §2.2); the head
// ends with an empty line. Each line is checked as soon as it is complete,
// so garbage is refused without waiting for the end of the head, and the
// outcome depends only on the first MaxHead bytes, never on how they were
// split into reads. On ErrShortBuffer, n is 0. A slow client ("slowloris")
// is bounded by MaxHead here and by the caller's handshake deadline.
//
// Rules beyond the request line: header names are tokens with no space
// before the colon; obsolete line folding and control bytes other than
// HTAB are refused (RFC 9112 §5). Interpreted: Proxy-Authorization,
// Tor-Stream-Isolation and X-Tor-Stream-Isolation, Tor-Stream-Options
// (kept raw; the other Tor-* headers collected), Host, Connection, Content-Length and
// Transfer-Encoding.
func ParseHead(in []byte) (Head, int, error) {
	lim := in
	if len(lim) > MaxHead {
		lim = lim[:MaxHead]
	}
	var h Head
	var st headState
	for pos, first := 0, true; ; first = false {
		i := bytes.IndexByte(lim[pos:], '\n')
		if i < 0 {
			if len(lim) == MaxHead {
				return Head{}, 0, ErrHeadTooLarge
			}
			return Head{}, 0, ErrShortBuffer
		}
		line := lim[pos : pos+i]
		pos += i + 1
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		switch {
		case first:
			if err := h.parseRequestLine(line); err != nil {
				return Head{}, 0, err
			}
		case len(line) == 0:
			if err := h.finish(&st); err != nil {
				return Head{}, 0, err
			}
			return h, pos, nil
		default:
			name, value, err := splitHeader(line)
			if err != nil {
				return Head{}, 0, err
			}
			if err := h.header(&st, name, value); err != nil {
				return Head{}, 0, err
			}
		}
	}
}

// parseRequestLine: method SP request-target SP HTTP-version (RFC 9112 §3),
// single spaces, as a real client sends it.
func (h *Head) parseRequestLine(line []byte) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return malformed("request line has no method")
	}
	method, rest := line[:sp1], line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return malformed("request line has no target or version")
	}
	target, proto := rest[:sp2], rest[sp2+1:]
	if !isToken(method) {
		return malformed("method is not a token")
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return malformed("control byte or space in request target")
		}
	}
	if !isHTTPVersion(proto) {
		return malformed("version is not HTTP/d.d")
	}
	h.Method, h.Target, h.Proto = string(method), string(target), string(proto)
	if h.Method == "CONNECT" {
		host, port, err := parseAuthority(target)
		if err != nil {
			return err
		}
		h.IsConnect, h.Host, h.Port = true, host, port
	}
	return nil
}

// isHTTPVersion: "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3).
func isHTTPVersion(p []byte) bool {
	return len(p) == 8 && string(p[:5]) == "HTTP/" && isDigit(p[5]) && p[6] == '.' && isDigit(p[7])
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// splitHeader: field-name ":" OWS field-value OWS (RFC 9112 §5).
func splitHeader(line []byte) (name, value []byte, err error) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, malformed("obsolete line folding")
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || !isToken(line[:colon]) {
		return nil, nil, malformed("header name is not a token")
	}
	value = bytes.Trim(line[colon+1:], " \t")
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, nil, malformed("control byte in header value")
		}
	}
	return line[:colon], value, nil
}

// isToken: 1*tchar (RFC 9110 §5.6.2).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTchar(c) {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c != 0 && bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
