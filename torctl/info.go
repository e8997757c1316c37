package torctl

import (
	"fmt"
	"strings"
)

// Parsers for GETINFO values (control-spec §3.9) that socksd reads.

// ParseListeners parses net/listeners/* values: a space-separated list of
// QuotedStrings, e.g. `"127.0.0.1:9050" "unix:/run/tor/socks"`.
func ParseListeners(v string) ([]string, error) {
	args, err := ParseArgs(v)
	if err != nil {
		return nil, fmt.Errorf("%w: listeners: %w", ErrBadReply, err)
	}
	out := make([]string, 0, len(args))
	for _, a := range args {
		if a.Key != "" {
			return nil, fmt.Errorf("%w: listeners: unexpected %s=", ErrBadReply, a.Key)
		}
		out = append(out, a.Value)
	}
	return out, nil
}

// ParseStreamStatus parses GETINFO stream-status: one
// "StreamID SP StreamStatus SP CircuitID SP Target" line per stream, the same
// shape as a STREAM event, so the result reuses StreamEvent.
func ParseStreamStatus(v string) ([]StreamEvent, error) {
	var out []StreamEvent
	for _, l := range infoLines(v) {
		s, err := ParseStreamEvent(Event{Type: "STREAM", Text: "STREAM " + l, Lines: []ReplyLine{{Code: 250, Sep: ' ', Text: "STREAM " + l}}})
		if err != nil {
			return out, fmt.Errorf("%w: stream-status line %q", ErrBadReply, clip([]byte(l)))
		}
		out = append(out, s)
	}
	return out, nil
}

// ParseCircuitStatus parses GETINFO circuit-status: one CIRC-event-shaped
// line per circuit.
func ParseCircuitStatus(v string) ([]CircEvent, error) {
	var out []CircEvent
	for _, l := range infoLines(v) {
		c, err := ParseCircEvent(Event{Type: "CIRC", Text: "CIRC " + l, Lines: []ReplyLine{{Code: 250, Sep: ' ', Text: "CIRC " + l}}})
		if err != nil {
			return out, fmt.Errorf("%w: circuit-status line %q", ErrBadReply, clip([]byte(l)))
		}
		out = append(out, c)
	}
	return out, nil
}

// AddressMapping is one line of GETINFO address-mappings/*:
// "from to expiry", expiry being "NEVER" or a quoted local time.
type AddressMapping struct {
	From, To string
	Expiry   string // "NEVER" or the time as Tor wrote it
}

// ParseAddressMappings parses GETINFO address-mappings/{all,config,cache,control}.
func ParseAddressMappings(v string) ([]AddressMapping, error) {
	var out []AddressMapping
	for _, l := range infoLines(v) {
		args, err := ParseArgs(l)
		if err != nil || len(args) < 3 {
			return out, fmt.Errorf("%w: address mapping %q", ErrBadReply, clip([]byte(l)))
		}
		out = append(out, AddressMapping{From: args[0].Value, To: args[1].Value, Expiry: args[2].Value})
	}
	return out, nil
}

// infoLines splits a GETINFO value into its non-empty lines.
func infoLines(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if l = strings.TrimSuffix(l, "\r"); l != "" {
			out = append(out, l)
		}
	}
	return out
}
