package torctl

import (
	"errors"
	"fmt"
)

// Sentinel errors. They are wrapped with %w; test with errors.Is.
var (
	// ErrClosed: the connection was closed by Close.
	ErrClosed = errors.New("torctl: connection closed")
	// ErrLineTooLong: Tor sent a line longer than MaxLineLength; the
	// connection is closed because the stream can no longer be trusted.
	ErrLineTooLong = errors.New("torctl: line too long")
	// ErrReplyTooLarge: one reply or event exceeded MaxMessageSize.
	ErrReplyTooLarge = errors.New("torctl: reply too large")
	// ErrProtocol: Tor sent something that is not control-spec §2.3 grammar.
	ErrProtocol = errors.New("torctl: protocol error")
	// ErrUnexpectedReply: a reply arrived while no command was in flight.
	ErrUnexpectedReply = errors.New("torctl: reply without a command")
	// ErrBadArgument: a command argument would break the line grammar
	// (empty, or contains SP/CR/LF where only a token is allowed). Checked
	// before anything is sent, so hostile names cannot inject commands.
	ErrBadArgument = errors.New("torctl: bad command argument")
	// ErrNoAuthMethod: no offered authentication method could be used.
	ErrNoAuthMethod = errors.New("torctl: no usable authentication method")
	// ErrServerHash: SAFECOOKIE server hash did not verify (proposal 193);
	// the connection is closed without sending AUTHENTICATE.
	ErrServerHash = errors.New("torctl: SAFECOOKIE server hash mismatch")
	// ErrCookie: the cookie file is unusable (control-spec §3.21: cookies
	// are exactly 32 bytes).
	ErrCookie = errors.New("torctl: bad authentication cookie")
	// ErrBadEvent: an event does not have the fields its type requires.
	ErrBadEvent = errors.New("torctl: malformed event")
	// ErrBadReply: a 2xx reply does not have the shape its command requires.
	ErrBadReply = errors.New("torctl: malformed reply")
	// ErrQuote: malformed QuotedString.
	ErrQuote = errors.New("torctl: malformed quoted string")
)

// Error is a non-2xx reply from Tor (control-spec §4), e.g.
// "552 Unknown stream".
type Error struct {
	Code int
	Text string
}

func (e *Error) Error() string { return fmt.Sprintf("torctl: %d %s", e.Code, e.Text) }

// IsCode reports whether err is (or wraps) a *Error with the given code.
func IsCode(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
