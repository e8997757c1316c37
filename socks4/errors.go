package socks4

import (
	"errors"
	"fmt"
)

// Sentinel errors. A rejected request is reported as a *ReplyError whose
// Err is one of these, so callers test with errors.Is and map the failure
// with errors.As; nothing is ever classified by its text.
var (
	// ErrShortBuffer means the message is incomplete: keep the bytes,
	// read more and call Step again with the longer buffer.
	ErrShortBuffer = errors.New("socks4: short buffer")
	// ErrVersion means the first byte is not 4. No reply is due: the
	// peer is not speaking SOCKS4, so the connection is just closed.
	ErrVersion = errors.New("socks4: version is not 4")
	// ErrCommandUnsupported is BIND or any command other than CONNECT
	// and RESOLVE (socks-extensions.txt §1.1: BIND is not supported).
	ErrCommandUnsupported = errors.New("socks4: command not supported")
	// ErrZeroPort is a CONNECT to port 0.
	ErrZeroPort = errors.New("socks4: destination port is zero")
	// ErrZeroIP is DSTIP 0.0.0.0, which is neither an address nor the
	// SOCKS4a marker.
	ErrZeroIP = errors.New("socks4: destination address is 0.0.0.0")
	// ErrHostname is a SOCKS4a hostname that is empty or not a valid
	// destination (see socksproto.ValidHostname).
	ErrHostname = errors.New("socks4: invalid hostname")
	// ErrHostnameTooLong is a SOCKS4a hostname longer than MaxHostname.
	ErrHostnameTooLong = errors.New("socks4: hostname too long")
	// ErrTooLong is a message still unterminated after MaxMessage bytes.
	ErrTooLong = errors.New("socks4: request too long")
	// ErrDone is returned by Step once the handshake has finished.
	ErrDone = errors.New("socks4: handshake already finished")
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
