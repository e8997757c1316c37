package dispatch

import (
	"bytes"
	"errors"

	"socksd/httpguard"
	"socksd/socksproto"
)

// HTTP handshake outcomes that end the connection without a request.
var (
	errWarningPage     = errors.New("dispatch: plain HTTP request answered with the warning page")
	errForeignHost     = errors.New("dispatch: HTTP request whose Host is not this machine closed without an answer")
	errOptionsAnswered = errors.New("dispatch: HTTP OPTIONS answered, no CONNECT followed")
)

// maxOptions bounds the OPTIONS requests one connection may send before
// its CONNECT; the handshake deadline bounds their time.
const maxOptions = 8

// An HTTP handshake reads requests until a CONNECT (Tor's http-connect
// spec and proposal 365):
//
//   - A request that is not CONNECT is answered only when its Host names
//     this machine (httpguard.AddressedToProxy); otherwise the connection
//     is closed without a byte, so a web page using DNS rebinding learns
//     nothing. The same holds for a malformed or oversized head that does
//     not start with "CONNECT ": only a CONNECT, which no web page can
//     send, gets a 400 or 431.
//   - OPTIONS gets the methods and identification headers. When the
//     client keeps the connection (HTTP/1.1 by default) its next request
//     is read from the same connection, as the spec asks clients to do;
//     an OPTIONS announcing a body is refused with 400 (RFC 9110 §9.3.7
//     lets a server refuse what it does not read).
//   - Any other method gets the warning page, and so do CONNECT and
//     OPTIONS when http_connect is off (the port is then no HTTP CONNECT
//     proxy, so OPTIONS has no CONNECT to announce).
//   - CONNECT becomes the request, with its isolation headers mapped by
//     httpIdentity.
//
// httpHandshake puts this under the Step contract of socksproto.Action,
// so dispatch's one handshake loop drives it like the SOCKS parsers: a
// head is consumed only when complete (an answered OPTIONS is consumed
// with its answer as the Reply), so each call starts at a request line.
type httpHandshake struct {
	shown   string // the listener's address: the warning page, AddressedToProxy
	connect bool   // the listener accepts HTTP CONNECT
	options int    // OPTIONS answered so far
	head    httpguard.Head
}

func (h *httpHandshake) step(in []byte) (socksproto.Action, error) {
	head, n, err := httpguard.ParseHead(in)
	switch {
	case errors.Is(err, httpguard.ErrShortBuffer):
		return socksproto.Action{}, socksproto.ErrShortBuffer
	case err != nil && !isConnectLine(in):
		return socksproto.Action{}, errors.Join(errForeignHost, err)
	case errors.Is(err, httpguard.ErrHeadTooLarge):
		return socksproto.Action{Reply: httpguard.AppendConnectError(nil, 431, "", 0)}, err
	case err != nil:
		return socksproto.Action{Reply: httpguard.AppendConnectError(nil, 400, "", 0)}, err
	case !head.IsConnect && !head.AddressedToProxy(h.shown):
		return socksproto.Action{}, errForeignHost
	case head.Method == "OPTIONS" && h.connect:
		if head.HasBody {
			return socksproto.Action{Reply: httpguard.AppendConnectError(nil, 400, "", 0)},
				errors.New("dispatch: OPTIONS with a body")
		}
		h.options++
		keep := head.Persistent && h.options < maxOptions
		a := socksproto.Action{Consumed: n, Reply: httpguard.AppendOptions(nil, keep)}
		if !keep {
			return a, errOptionsAnswered
		}
		return a, nil
	case !head.IsConnect || !h.connect:
		// A browser pointed at a SOCKS port as an HTTP proxy: explain
		// instead of silently closing (Tor's HTTP-on-SocksPort page).
		return socksproto.Action{Reply: httpguard.WarningPage(h.shown)}, errWarningPage
	}
	h.head = head
	return socksproto.Action{Consumed: n, Done: true}, nil
}

// isConnectLine: the client's bytes start a CONNECT request line.
func isConnectLine(b []byte) bool { return bytes.HasPrefix(b, []byte("CONNECT ")) }

// httpIdentity sets a CONNECT's isolation token (the per-stream options
// model's isolation, which applyStreamOptions turns into the identity) and
// credentials (the fields the socks_auth isolation field reads) from its
// headers, so that HTTP clients get what SOCKS clients get:
//
//   - Tor-Stream-Isolation: T (or the deprecated X-Tor-Stream-Isolation)
//     is the isolation token T, the same identity as SOCKS5's "<torS0X>0"
//     username with password T, 0x97's isolation=T and pt-spec's
//     isolation=T (unless client_protocol isolation separates protocols).
//     An empty token counts as none, as an empty SOCKS credential does.
//   - Proxy-Authorization: Basic "tor-iso:T" (the form proposal 365 asks
//     clients to use from now on) is the same token T.
//   - Proxy-Authorization: Basic "user:pass" is user and password, as
//     in SOCKS5 (per-user new identity works on it).
//   - Any other Proxy-Authorization value is the identity as raw bytes
//     (C Tor compares the raw header; proposal 365 keeps that).
//   - With both a token and other credentials, both count, as in C Tor
//     (which compares the header and the token) and Arti.
func httpIdentity(req *Request, h *httpguard.Head) {
	var token []byte
	if h.HasStreamIsolation && len(h.StreamIsolation) > 0 {
		token = h.StreamIsolation
	}
	isoAuth := h.HasAuth && string(h.User) == httpguard.IsolationUser
	switch {
	case isoAuth && (token == nil || bytes.Equal(token, h.Pass)):
		token = h.Pass // tor-iso:T is the token, and nothing else
	case h.HasAuth:
		req.HasAuth = true
		req.Username, req.Password = append([]byte(nil), h.User...), append([]byte(nil), h.Pass...)
	case len(h.ProxyAuthorization) > 0:
		req.HasAuth = true
		req.Username = append([]byte(nil), h.ProxyAuthorization...)
	}
	if len(token) > 0 {
		// Set cannot fail for the isolation key, and is its first use.
		req.opts.Set([]byte("isolation"), token)
	}
}
