package dispatch

import (
	"bytes"
	"errors"
	"fmt"

	"socksd/httpguard"
	"socksd/socks5"
	"socksd/socksproto"
)

// HTTP handshake outcomes that end the connection without a request.
var (
	errWarningPage     = errors.New("dispatch: plain HTTP request answered with the warning page")
	errForeignHost     = errors.New("dispatch: HTTP request whose Host is not this machine closed without an answer")
	errOptionsAnswered = errors.New("dispatch: HTTP OPTIONS answered, no CONNECT followed")
	// errHTTPStreamOptions: a CONNECT whose Tor-Stream-Options cannot be
	// applied (see httpStreamOptions), answered 400.
	errHTTPStreamOptions = errors.New("dispatch: CONNECT with invalid Tor-Stream-Options")
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
//   - CONNECT becomes the request, with its per-stream options read by
//     httpStreamOptions (a refusal is a 400) and its isolation headers
//     mapped by httpIdentity.
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
	opts    socksproto.StreamOptions // the CONNECT's, from httpStreamOptions
}

func (h *httpHandshake) step(in []byte) (socksproto.Action, error) {
	head, n, err := httpguard.ParseHead(in)
	switch {
	case errors.Is(err, httpguard.ErrShortBuffer):
		return socksproto.Action{}, socksproto.ErrShortBuffer
	case err != nil && !isConnectLine(in):
		return socksproto.Action{}, errors.Join(errForeignHost, err)
	case errors.Is(err, httpguard.ErrBadStreamOptions):
		return streamOptionsRefusal("Tor-Stream-Options repeated"), errors.Join(errHTTPStreamOptions, err)
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
	opts, err := httpStreamOptions(&head)
	if err != nil {
		return streamOptionsRefusal("Tor-Stream-Options: " + err.Error()), errors.Join(errHTTPStreamOptions, err)
	}
	h.head, h.opts = head, opts
	return socksproto.Action{Consumed: n, Done: true}, nil
}

// streamOptionsRefusal answers a CONNECT whose options cannot be applied:
// 400, since the request itself is at fault, with the reason in
// Tor-Request-Failed after 0x01, the code the pt-spec form of the same
// options is refused with. The reason names the option, never the
// destination.
func streamOptionsRefusal(reason string) socksproto.Action {
	return socksproto.Action{Reply: httpguard.AppendConnectError(nil, 400, reason, byte(socks5.ReplyGeneralFailure))}
}

// errIsolationConflict: Tor-Stream-Options' isolation and the
// Tor-Stream-Isolation header name different tokens.
var errIsolationConflict = fmt.Errorf("%w: isolation differs from Tor-Stream-Isolation", socksproto.ErrOption)

// httpStreamOptions reads a CONNECT's per-stream options from its
// Tor-Stream-Options header: the pt-spec argument list of the SOCKS form
// ("fresh=1;lifetime=60s"), parsed and validated by the same
// socksproto.ParseArgs, so the keys, values, escapes and refusals are
// those of every other form. It is always understood (like method 0x97,
// unlike the pt-spec form in SOCKS credentials, which reinterprets what
// was an identity): no HTTP client sends this header by accident.
//
// An isolation key and a non-empty Tor-Stream-Isolation (or its X- name)
// must name the same token; two tokens would leave the stream's identity
// a guess. An empty one counts as none, as everywhere else. The other
// Tor-* headers (httpguard.Head.TorHeaders) are ignored, not refused: a
// client written for a proxy that implements a later proposal still gets
// its tunnel, as from C Tor and Arti.
func httpStreamOptions(h *httpguard.Head) (socksproto.StreamOptions, error) {
	var o socksproto.StreamOptions
	if !h.HasStreamOptions {
		return o, nil
	}
	if err := socksproto.ParseArgs(h.StreamOptions, &o); err != nil {
		return socksproto.StreamOptions{}, err
	}
	if len(o.Isolation) > 0 && h.HasStreamIsolation && len(h.StreamIsolation) > 0 &&
		!bytes.Equal(o.Isolation, h.StreamIsolation) {
		return socksproto.StreamOptions{}, errIsolationConflict
	}
	return o, nil
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
//
// req.opts holds the options of Tor-Stream-Options already (see
// httpStreamOptions); their isolation is the token when the headers name
// none.
func httpIdentity(req *Request, h *httpguard.Head) {
	var token []byte
	switch {
	case h.HasStreamIsolation && len(h.StreamIsolation) > 0:
		token = h.StreamIsolation
	case len(req.opts.Isolation) > 0:
		token = req.opts.Isolation
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
		// Not Set: Tor-Stream-Options may have set the same token.
		req.opts.Isolation, req.opts.HasIsolation = append([]byte(nil), token...), true
	}
}
