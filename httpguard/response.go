package httpguard

import (
	"html"
	"strconv"
	"strings"

	"socksd/internal/endpoint"
	"socksd/socks5"
)

// Identification headers (http-connect spec, "OPTIONS method support":
// clients read Server and Tor-Capabilities to learn what the proxy is
// without connecting). The product token "tor/1.0" says "a Tor proxy
// speaking this HTTP CONNECT dialect", as C Tor ("tor/1.0 (tor 0.4.9.x)")
// and Arti send it; socksd names itself but not its version, which a local
// client does not need and a fingerprint would. Tor-Capabilities is empty
// because no capability name is defined yet (C Tor and Arti send it empty
// too). CONNECT answers carry Via instead of Server, as both do.
const (
	ServerValue     = "tor/1.0 (socksd)"
	ViaValue        = "tor/1.0 tor-network (socksd)"
	identHeaders    = "Tor-Capabilities: \r\nServer: " + ServerValue + "\r\n"
	viaHeaders      = "Tor-Capabilities: \r\nVia: " + ViaValue + "\r\n"
	optionsAllow    = "CONNECT, OPTIONS"
	optionsResponse = "HTTP/1.1 200 OK\r\nAllow: " + optionsAllow + "\r\n" + identHeaders + "Content-Length: 0\r\n"
)

// AppendOptions appends the answer to an OPTIONS request (http-connect
// spec: Allow lists CONNECT and OPTIONS, the methods socksd implements),
// with the identification headers and an empty body. When persistent is
// false it also says "Connection: close", and the caller closes;
// otherwise the client may send its CONNECT on the same connection, which
// the spec asks clients to do so that what OPTIONS said still holds.
func AppendOptions(dst []byte, persistent bool) []byte {
	dst = append(dst, optionsResponse...)
	if !persistent {
		dst = append(dst, "Connection: close\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// WarningStatusLine is the status line of WarningPage. Like C Tor's
// "HTTP/1.0 501 Tor is not an HTTP Proxy", the reason phrase itself says
// what is wrong, because some clients show only that.
const WarningStatusLine = "HTTP/1.0 501 socksd is a SOCKS proxy, not an HTTP proxy"

// WarningPage is the complete response to a non-CONNECT HTTP request
// addressed to this machine (see AddressedToProxy): the status line above
// and exactly these headers, in this order,
//
//	Tor-Capabilities:
//	Server: tor/1.0 (socksd)
//	Content-Type: text/html; charset=utf-8
//	Content-Length: <exact body length>
//	Connection: close
//
// then a short HTML page saying this port is a SOCKS proxy and how to
// configure a browser: SOCKS v5 at the listener's host and port, with
// "Proxy DNS when using SOCKS v5" turned on so names go to Tor instead of
// the local resolver. listenAddr is the listener's configured address
// ("127.0.0.1:9350", "[::1]:9350", "unix:/run/socksd.sock"); it is shown
// HTML-escaped. The caller writes the page and closes the connection.
func WarningPage(listenAddr string) []byte {
	host, port := splitListen(listenAddr)
	var where string
	if port == "" {
		where = "<li>SOCKS address: <code>" + html.EscapeString(host) + "</code></li>\n"
	} else {
		where = "<li>SOCKS host: <code>" + html.EscapeString(host) + "</code></li>\n" +
			"<li>Port: <code>" + html.EscapeString(port) + "</code></li>\n"
	}
	body := `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>This is a SOCKS proxy, not an HTTP proxy</title>
</head>
<body>
<h1>This is a SOCKS proxy, not an HTTP proxy</h1>
<p>Your browser or application sent a plain HTTP request to socksd as if it
were an HTTP proxy. socksd is a SOCKS proxy (SOCKS4, SOCKS4a and SOCKS5) that
sends every connection through Tor, so this request was not forwarded.</p>
<p>To use it, change your proxy settings to:</p>
<ul>
<li>Proxy type: <strong>SOCKS v5</strong></li>
` + where + `<li>Turn on <strong>Proxy DNS when using SOCKS v5</strong>, so that
host names are resolved through Tor and never by your computer.</li>
</ul>
<p>Leave the HTTP and HTTPS (SSL) proxy fields empty. For command-line tools,
use for example <code>curl --socks5-hostname</code>.</p>
</body>
</html>
`
	var b strings.Builder
	b.Grow(len(body) + 160)
	b.WriteString(WarningStatusLine + "\r\n")
	b.WriteString(identHeaders)
	b.WriteString("Content-Type: text/html; charset=utf-8\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	b.WriteString("Connection: close\r\n\r\n")
	b.WriteString(body)
	return []byte(b.String())
}

// splitListen splits "host:port" / "[v6]:port"; other forms (unix:/path)
// come back whole with an empty port.
func splitListen(a string) (host, port string) {
	if network, _ := endpoint.Split(a); network == "unix" {
		return a, ""
	}
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return a, ""
	}
	host, port = a[:i], a[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") {
		return a, "" // a bare IPv6 address without port
	}
	return host, port
}

// AppendConnectEstablished appends the answer to a CONNECT whose stream
// Tor accepted, with Tor-Capabilities and Via; tunnel bytes follow it
// directly.
func AppendConnectEstablished(dst []byte) []byte {
	return append(dst, "HTTP/1.1 200 Connection established\r\n"+viaHeaders+"\r\n"...)
}

// AppendConnectError appends the answer to a failed CONNECT (or to a
// malformed request): an HTTP/1.1 status line with the standard reason
// phrase for status followed, when socksCode is not 0, by the name of the
// code in parentheses (the http-connect spec asks for the actual error in
// the Reason-Phrase, as C Tor's "502 Bad Gateway (tor protocol
// violation)"), then
//
//	Tor-Capabilities:
//	Via: tor/1.0 tor-network (socksd)
//	Tor-Request-Failed: 0xNN <reason>
//	Content-Length: 0
//	Connection: close
//
// The Tor-Request-Failed header carries the SOCKS5 reply code (socksd's
// canonical failure code, Tor's extended codes 0xF0-0xF7 included) as two
// lower-case hex digits, then a reason: torReason with every byte outside
// printable ASCII dropped, at most 128 bytes, or when that is empty the
// standard name of the code ("host unreachable", ...). The header is left
// out when socksCode is 0 (success, meaning no SOCKS failure: a malformed
// request answered with 400 or 431). A status outside 100-599 becomes 500.
// See StatusFor for the status that fits a code.
func AppendConnectError(dst []byte, status int, torReason string, socksCode byte) []byte {
	if status < 100 || status > 599 {
		status = 500
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, statusText(status)...)
	if socksCode != 0 {
		dst = append(dst, " ("...)
		dst = append(dst, socks5.Reply(socksCode).String()...)
		dst = append(dst, ')')
	}
	dst = append(dst, "\r\n"+viaHeaders...)
	if socksCode != 0 {
		dst = append(dst, "Tor-Request-Failed: 0x"...)
		const hexdigits = "0123456789abcdef"
		dst = append(dst, hexdigits[socksCode>>4], hexdigits[socksCode&0xf], ' ')
		n := 0
		for i := 0; i < len(torReason) && n < 128; i++ {
			if c := torReason[i]; c >= ' ' && c < 0x7f {
				dst = append(dst, c)
				n++
			}
		}
		if n == 0 {
			dst = append(dst, socks5.Reply(socksCode).String()...)
		}
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "Content-Length: 0\r\nConnection: close\r\n\r\n"...)
}

// StatusFor is the HTTP status socksd answers a failed CONNECT with, for a
// SOCKS5 reply code. socksd learns a failure as a SOCKS code (the one Tor's
// SocksPort answered, refined from the stream's END reason), so this is
// the http-connect spec's END-reason table seen through the codes Tor maps
// those reasons to, with proposal 365's changes:
//
//   - 0x04 host unreachable (RESOLVEFAILED, NOROUTE) and 0x03 network
//     unreachable: 503, as proposal 365 asks (C Tor before it: 404).
//   - 0x05 connection refused (CONNECTREFUSED, CONNRESET): 503, the
//     destination is not available; C Tor's table splits these into 403
//     and 503, but a SOCKS code cannot tell them apart, and a refusal is
//     no "Forbidden".
//   - 0x06 TTL expired (TIMEOUT, socks_timeout) and 0xF7 introduction
//     timed out: 504.
//   - 0x02 not allowed: 403, whether socksd's policy (reject_internal,
//     safe_socks) or an exit policy refused it.
//   - 0x07, 0x08 and 0xF6 (a malformed onion address): 400, the request
//     cannot be attempted.
//   - 0xF4, 0xF5 (onion client authorization missing or wrong): 403.
//   - 0xF0-0xF3 (descriptor not found or invalid, introduction or
//     rendezvous failed): 503, the service is not available now.
//   - 0x01 and anything else: 502, Tor (or socksd's path to it) failed;
//     socksd fails closed when Tor is not usable.
func StatusFor(socksCode byte) int {
	switch socksCode {
	case 0x02, 0xF4, 0xF5:
		return 403
	case 0x07, 0x08, 0xF6:
		return 400
	case 0x06, 0xF7:
		return 504
	case 0x03, 0x04, 0x05, 0xF0, 0xF1, 0xF2, 0xF3:
		return 503
	default:
		return 502
	}
}

func statusText(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	}
	return "Error"
}
