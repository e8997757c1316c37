package socks4

import (
	"errors"
	"fmt"
)

// Sentinel errors of SOCKS4 alone; the ones every handshake shares
// (socksproto.ErrShortBuffer, ErrVersion, ErrCommand, ErrHostname,
// ErrPortZero, ErrHandshakeOver) live in socksproto. A rejected request is
// reported as a *ReplyError whose Err is one of them, so callers test with
// errors.Is and map the failure with errors.As; nothing is ever classified
// by its text.
var (
	// ErrZeroIP is DSTIP 0.0.0.0, which is neither an address nor the
	// SOCKS4a marker.
	ErrZeroIP = errors.New("socks4: destination address is 0.0.0.0")
	// ErrHostnameTooLong is a SOCKS4a hostname longer than MaxHostname.
	ErrHostnameTooLong = errors.New("socks4: hostname too long")
	// ErrTooLong is a message still unterminated after MaxMessage bytes.
	ErrTooLong = errors.New("socks4: request too long")
)

// ReplyError is a rejected request together with the SOCKS4 reply code the
// client must receive before the connection is closed.
type ReplyError struct {
	Code Reply
	Err  error
}

func (e *ReplyError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("socks4: reply %#02x", byte(e.Code))
	}
	return fmt.Sprintf("socks4: reply %#02x: %v", byte(e.Code), e.Err)
}

func (e *ReplyError) Unwrap() error { return e.Err }
