package dispatch

import (
	"context"
	"errors"
	"net/netip"

	"socksd/httpguard"
	"socksd/socks4"
	"socksd/socks5"
)

// replyCode is THE mapping from any failure to socksd's canonical code
// (one function, errors.As, never the error's text: a reworded message
// must not change what a client is told):
//   - a *socks5.ReplyError anywhere in the chain carries its code;
//   - a context deadline (our own timeout) is 0x06 TTL expired, what Tor
//     answers a stream that timed out;
//   - anything else is 0x01 general failure (fail closed).
func replyCode(err error) socks5.Reply {
	if err == nil {
		return socks5.ReplySucceeded
	}
	var re *socks5.ReplyError
	if errors.As(err, &re) {
		return re.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return socks5.ReplyTTLExpired
	}
	return socks5.ReplyGeneralFailure
}

// clientCode is the code a SOCKS5 client sees. Tor's onion-service codes
// 0xF0–0xF7 (proposal 304) go out only with extended_errors; otherwise
// they become what a SocksPort without ExtendedErrors answers (measured
// on tor 0.4.9.11, test/e2e TestTorOnionReplies):
// 0x01 general failure for a malformed onion address (F6), 0x04 host
// unreachable for the rest, each of which says the service (the "host")
// could not be reached. Unassigned codes become 0x01.
func clientCode(code socks5.Reply, extended bool) socks5.Reply {
	switch {
	case code >= socks5.ReplyOnionDescNotFound && code <= socks5.ReplyOnionIntroTimedOut:
		if extended {
			return code
		}
		if code == socks5.ReplyOnionBadAddress {
			return socks5.ReplyGeneralFailure
		}
		return socks5.ReplyHostUnreachable
	case code <= socks5.ReplyAddressUnsupported:
		return code
	}
	return socks5.ReplyGeneralFailure
}

// appendReply answers req in its client's protocol: success (err nil) with
// the RESOLVE answer addr or RESOLVE_PTR answer host where that applies,
// or the failure err maps to. It returns the reply and the SOCKS5 code the
// client effectively got (for metrics).
//
//   - SOCKS4/4a: 0x5A granted (RESOLVE answer in DSTIP), 0x5B for every
//     failure, with zero port/address as Tor sends ("00 5b 0000 00000000").
//   - SOCKS5: the code; failed RESOLVE/RESOLVE_PTR in Tor's ATYP 0 form.
//   - HTTP CONNECT: "200 Connection established", or the status of
//     httpguard.StatusFor (403 not allowed, 504 TTL expired, 502 ...) with
//     the Tor-Request-Failed header naming the code.
func appendReply(dst []byte, req *Request, err error, addr netip.Addr, host string, extended bool) ([]byte, socks5.Reply) {
	code := clientCode(replyCode(err), extended)
	switch req.Protocol {
	case ProtoSOCKS4, ProtoSOCKS4a:
		if code == socks5.ReplySucceeded {
			if req.Command == CmdResolve {
				return socks4.AppendReply(dst, socks4.ReplyGranted, addr, 0), code
			}
			return socks4.AppendReply(dst, socks4.ReplyGranted, netip.Addr{}, 0), code
		}
		return socks4.AppendReply(dst, socks4.ReplyRejected, netip.Addr{}, 0), code
	case ProtoHTTPConnect:
		if code == socks5.ReplySucceeded {
			return httpguard.AppendConnectEstablished(dst), code
		}
		return httpguard.AppendConnectError(dst, httpguard.StatusFor(byte(code)), "", byte(code)), code
	}
	if code != socks5.ReplySucceeded {
		if req.Command.Lookup() {
			return socks5.AppendResolveFailure(dst, code), code
		}
		return socks5.AppendReply(dst, code, netip.Addr{}, 0), code
	}
	switch req.Command {
	case CmdResolve:
		return socks5.AppendReply(dst, code, addr, 0), code
	case CmdResolvePTR:
		return socks5.AppendReplyHost(dst, code, host, 0), code
	}
	return socks5.AppendReply(dst, code, netip.Addr{}, 0), code
}
