package torctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// PortPolicy is an exit policy summary: the ports a relay accepts (or
// rejects) for "most" addresses (dir-spec §3.3 microdescriptor "p" and
// "p6" lines: ("accept" / "reject") SP PortList). A client picks and judges
// exits by this summary alone, without the full policy; so does socksd.
// The zero value rejects every port (dir-spec: a microdescriptor without a
// "p" line means "reject 1-65535").
type PortPolicy struct {
	Accept bool
	Ranges [][2]uint16 // inclusive, in the order given
}

// Allows reports whether the summary lets a stream to port exit.
func (p PortPolicy) Allows(port uint16) bool {
	if len(p.Ranges) == 0 {
		return false // the zero value: no "p" line, nothing exits
	}
	for _, r := range p.Ranges {
		if port >= r[0] && port <= r[1] {
			return p.Accept
		}
	}
	return !p.Accept
}

// ParsePortPolicy parses the value of a "p" or "p6" line: "accept 80,443"
// or "reject 1-1024,6667".
func ParsePortPolicy(s string) (PortPolicy, error) {
	verb, list, ok := strings.Cut(strings.TrimSpace(s), " ")
	var p PortPolicy
	switch verb {
	case "accept":
		p.Accept = true
	case "reject":
	default:
		return PortPolicy{}, fmt.Errorf("%w: port policy %q", ErrBadReply, clip([]byte(s)))
	}
	if !ok || list == "" {
		return PortPolicy{}, fmt.Errorf("%w: port policy without ports %q", ErrBadReply, clip([]byte(s)))
	}
	for item := range strings.SplitSeq(list, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		a, err1 := parsePort(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = parsePort(hi)
		}
		if err1 != nil || err2 != nil || b < a {
			return PortPolicy{}, fmt.Errorf("%w: port range %q", ErrBadReply, clip([]byte(item)))
		}
		p.Ranges = append(p.Ranges, [2]uint16{a, b})
	}
	return p, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || s[0] == '+' {
		return 0, ErrBadReply
	}
	return uint16(n), nil
}

// ExitPolicy is a relay's exit policy summaries for IPv4 and IPv6.
type ExitPolicy struct {
	IPv4, IPv6 PortPolicy
}

// ParseMicrodescPolicy reads the "p" and "p6" lines of a microdescriptor
// (dir-spec §3.3). A missing line rejects every port of that family.
func ParseMicrodescPolicy(md string) (ExitPolicy, error) {
	var e ExitPolicy
	for _, l := range infoLines(md) {
		var dst *PortPolicy
		var rest string
		if r, ok := strings.CutPrefix(l, "p "); ok {
			dst, rest = &e.IPv4, r
		} else if r, ok := strings.CutPrefix(l, "p6 "); ok {
			dst, rest = &e.IPv6, r
		} else {
			continue
		}
		p, err := ParsePortPolicy(rest)
		if err != nil {
			return ExitPolicy{}, err
		}
		*dst = p
	}
	return e, nil
}

// ExitPolicy returns the exit policy summaries of the relay with
// fingerprint fp (40 hex digits, "$" optional) from the microdescriptor
// Tor uses for it (control-spec §3.9 "md/id/<OR identity>").
func (c *Conn) ExitPolicy(ctx context.Context, fp string) (ExitPolicy, error) {
	fp = strings.TrimPrefix(fp, "$")
	if len(fp) != 40 || strings.Trim(fp, "0123456789abcdefABCDEF") != "" {
		return ExitPolicy{}, fmt.Errorf("%w: relay fingerprint %q", ErrBadArgument, clip([]byte(fp)))
	}
	key := "md/id/" + strings.ToUpper(fp)
	m, err := c.GetInfo(ctx, key)
	if err != nil {
		return ExitPolicy{}, err
	}
	return ParseMicrodescPolicy(m[key])
}
