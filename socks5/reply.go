package socks5

import "fmt"

// Reply is the REP field of a SOCKS5 reply (RFC 1928 §6), including Tor's
// extended onion-service codes from proposal 304 (0xF0–0xF7). It is also the
// canonical failure code inside socksd: every layer reports a failure as a
// *ReplyError carrying one of these, and the dispatcher maps it to the
// client's protocol (SOCKS4 0x5B, an HTTP status, ...).
type Reply byte

const (
	ReplySucceeded          Reply = 0x00
	ReplyGeneralFailure     Reply = 0x01
	ReplyNotAllowed         Reply = 0x02
	ReplyNetworkUnreachable Reply = 0x03
	ReplyHostUnreachable    Reply = 0x04
	ReplyConnectionRefused  Reply = 0x05
	ReplyTTLExpired         Reply = 0x06
	ReplyCommandUnsupported Reply = 0x07
	ReplyAddressUnsupported Reply = 0x08

	// proposal 304 / socks-extensions.txt: only sent when the SocksPort has ExtendedErrors.
	ReplyOnionDescNotFound  Reply = 0xF0
	ReplyOnionDescInvalid   Reply = 0xF1
	ReplyOnionIntroFailed   Reply = 0xF2
	ReplyOnionRendFailed    Reply = 0xF3
	ReplyOnionMissingAuth   Reply = 0xF4
	ReplyOnionWrongAuth     Reply = 0xF5
	ReplyOnionBadAddress    Reply = 0xF6
	ReplyOnionIntroTimedOut Reply = 0xF7
)

// ReplyError is a failure that knows the SOCKS5 reply it must produce.
type ReplyError struct {
	Code Reply
	Err  error
}

func (e *ReplyError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("socks5: reply %#02x", byte(e.Code))
	}
	return fmt.Sprintf("socks5: reply %#02x: %v", byte(e.Code), e.Err)
}

func (e *ReplyError) Unwrap() error { return e.Err }

// String names the code as RFC 1928 §6 and proposal 304 do, so logs and
// errors read "host unreachable" instead of a bare number.
func (r Reply) String() string {
	switch r {
	case ReplySucceeded:
		return "succeeded"
	case ReplyGeneralFailure:
		return "general SOCKS server failure"
	case ReplyNotAllowed:
		return "connection not allowed by ruleset"
	case ReplyNetworkUnreachable:
		return "network unreachable"
	case ReplyHostUnreachable:
		return "host unreachable"
	case ReplyConnectionRefused:
		return "connection refused"
	case ReplyTTLExpired:
		return "TTL expired"
	case ReplyCommandUnsupported:
		return "command not supported"
	case ReplyAddressUnsupported:
		return "address type not supported"
	case ReplyOnionDescNotFound:
		return "onion service descriptor can not be found"
	case ReplyOnionDescInvalid:
		return "onion service descriptor is invalid"
	case ReplyOnionIntroFailed:
		return "onion service introduction failed"
	case ReplyOnionRendFailed:
		return "onion service rendezvous failed"
	case ReplyOnionMissingAuth:
		return "onion service missing client authorization"
	case ReplyOnionWrongAuth:
		return "onion service wrong client authorization"
	case ReplyOnionBadAddress:
		return "onion service invalid address"
	case ReplyOnionIntroTimedOut:
		return "onion service introduction timed out"
	}
	return fmt.Sprintf("unknown reply %#02x", byte(r))
}

// Known reports whether r is one of the codes above: RFC 1928's 0x00–0x08
// or Tor's 0xF0–0xF7.
func (r Reply) Known() bool {
	return r <= ReplyAddressUnsupported || (r >= ReplyOnionDescNotFound && r <= ReplyOnionIntroTimedOut)
}
