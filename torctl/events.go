package torctl

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// eventArgs parses an event's first line after its type word, plus the
// KEYWORD=VALUE of any extra 650- lines (control-spec §4.1: clients must
// tolerate more arguments and more lines than expected).
func eventArgs(e Event, typ string) (pos []string, kw map[string]string, err error) {
	if e.Type != typ {
		return nil, nil, fmt.Errorf("%w: %s event, want %s", ErrBadEvent, e.Type, typ)
	}
	_, rest, _ := strings.Cut(e.Text, " ")
	args, err := ParseArgs(rest)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrBadEvent, typ, err)
	}
	pos, kw = splitArgs(args)
	for _, l := range e.Lines[min(1, len(e.Lines)):] {
		more, err := ParseArgs(l.Text)
		if err != nil {
			continue // an extra line we cannot read is an extra line we ignore
		}
		for _, a := range more {
			if _, dup := kw[a.Key]; a.Key != "" && !dup {
				kw[a.Key] = a.Value
			}
		}
	}
	return pos, kw, nil
}

// atoms reports whether every v is a plain word: non-empty, printable
// ASCII, no space or quote. control-spec §4.1 writes IDs, statuses and
// targets unquoted; a quoted string in their place (which ParseArgs would
// unquote, spaces and all) is a malformed line, not a status to act on.
// MAPADDRESS sends only plain words together in one command.
func atoms(vs ...string) bool {
	for _, v := range vs {
		if v == "" {
			return false
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c <= ' ' || c == '"' || c >= 0x7f {
				return false
			}
		}
	}
	return true
}

// StreamEvent is a parsed "650 STREAM" event (control-spec §4.1.2).
type StreamEvent struct {
	ID         string
	Status     string // NEW, NEWRESOLVE, REMAP, SENTCONNECT, SENTRESOLVE, SUCCEEDED, FAILED, CLOSED, DETACHED, CONTROLLER_WAIT, ...
	CircID     string // "0" when unattached
	Target     string // TargetAddress ":" Port, as sent
	TargetHost string // address without brackets
	TargetPort uint16

	Reason         string
	RemoteReason   string
	Source         string // REMAP: CACHE or EXIT
	SourceAddr     string // NEW/NEWRESOLVE: client address:port
	Purpose        string // NEW/NEWRESOLVE: USER, DNS_REQUEST, DIR_FETCH, ...
	SOCKSUsername  string
	SOCKSPassword  string
	HasSOCKSAuth   bool // SOCKS_USERNAME or SOCKS_PASSWORD was present
	ClientProtocol string
	IsoFields      []string
	NymEpoch       int
	SessionGroup   int

	Keywords map[string]string // every KEYWORD=VALUE, unquoted
}

// ParseStreamEvent parses a STREAM event. Unknown keywords are kept in
// Keywords; malformed numbers are left zero (their text is in Keywords).
func ParseStreamEvent(e Event) (StreamEvent, error) {
	pos, kw, err := eventArgs(e, "STREAM")
	if err != nil {
		return StreamEvent{}, err
	}
	if len(pos) < 4 {
		return StreamEvent{}, fmt.Errorf("%w: STREAM needs ID, status, circuit and target: %q", ErrBadEvent, e.Text)
	}
	if !atoms(pos[:4]...) {
		return StreamEvent{}, fmt.Errorf("%w: STREAM ID, status, circuit or target is not a plain word: %q", ErrBadEvent, e.Text)
	}
	s := StreamEvent{
		ID: pos[0], Status: pos[1], CircID: pos[2], Target: pos[3],
		Reason:         kw["REASON"],
		RemoteReason:   kw["REMOTE_REASON"],
		Source:         kw["SOURCE"],
		SourceAddr:     kw["SOURCE_ADDR"],
		Purpose:        kw["PURPOSE"],
		SOCKSUsername:  kw["SOCKS_USERNAME"],
		SOCKSPassword:  kw["SOCKS_PASSWORD"],
		ClientProtocol: kw["CLIENT_PROTOCOL"],
		Keywords:       kw,
	}
	_, hasUser := kw["SOCKS_USERNAME"]
	_, hasPass := kw["SOCKS_PASSWORD"]
	s.HasSOCKSAuth = hasUser || hasPass
	if v := kw["ISO_FIELDS"]; v != "" {
		s.IsoFields = strings.Split(v, ",")
	}
	s.NymEpoch, _ = strconv.Atoi(kw["NYM_EPOCH"])
	s.SessionGroup, _ = strconv.Atoi(kw["SESSION_GROUP"])
	s.TargetHost, s.TargetPort = splitTarget(s.Target)
	return s, nil
}

// splitTarget splits "host:port", "[v6]:port" or "(Tor_internal):0".
func splitTarget(t string) (string, uint16) {
	i := strings.LastIndexByte(t, ':')
	if i < 0 {
		return t, 0
	}
	host := t[:i]
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	p, err := strconv.ParseUint(t[i+1:], 10, 16)
	if err != nil {
		return t, 0
	}
	return host, uint16(p)
}

// CircEvent is a parsed "650 CIRC" event (control-spec §4.1.1).
type CircEvent struct {
	ID           string
	Status       string   // LAUNCHED, BUILT, GUARD_WAIT, EXTENDED, FAILED, CLOSED
	Path         []string // LongNames, "$FP~nick"
	BuildFlags   []string
	Purpose      string
	Reason       string
	RemoteReason string
	TimeCreated  time.Time // UTC; zero if absent or unparsable
	Keywords     map[string]string
}

// ParseCircEvent parses a CIRC event. The path is optional: it is the third
// positional argument when present.
func ParseCircEvent(e Event) (CircEvent, error) {
	pos, kw, err := eventArgs(e, "CIRC")
	if err != nil {
		return CircEvent{}, err
	}
	if len(pos) < 2 {
		return CircEvent{}, fmt.Errorf("%w: CIRC needs ID and status: %q", ErrBadEvent, e.Text)
	}
	if !atoms(pos[:2]...) {
		return CircEvent{}, fmt.Errorf("%w: CIRC ID or status is not a plain word: %q", ErrBadEvent, e.Text)
	}
	c := CircEvent{
		ID: pos[0], Status: pos[1],
		Purpose:      kw["PURPOSE"],
		Reason:       kw["REASON"],
		RemoteReason: kw["REMOTE_REASON"],
		Keywords:     kw,
	}
	if len(pos) > 2 && pos[2] != "" {
		c.Path = strings.Split(pos[2], ",")
		if !atoms(c.Path...) {
			return CircEvent{}, fmt.Errorf("%w: CIRC path is not a list of plain words: %q", ErrBadEvent, e.Text)
		}
	}
	if v := kw["BUILD_FLAGS"]; v != "" {
		c.BuildFlags = strings.Split(v, ",")
	}
	if v := kw["TIME_CREATED"]; v != "" {
		c.TimeCreated, _ = time.Parse("2006-01-02T15:04:05.999999999", v)
	}
	return c, nil
}

// CircMinorEvent is a parsed "650 CIRC_MINOR" event (control-spec
// §4.1.19): a circuit changed without changing status, e.g. its purpose.
type CircMinorEvent struct {
	ID         string
	Event      string   // PURPOSE_CHANGED, CANNIBALIZED
	Path       []string // LongNames, "$FP~nick"
	Purpose    string
	OldPurpose string
	Keywords   map[string]string
}

// ParseCircMinorEvent parses a CIRC_MINOR event. The path is optional, as
// in CIRC.
func ParseCircMinorEvent(e Event) (CircMinorEvent, error) {
	pos, kw, err := eventArgs(e, "CIRC_MINOR")
	if err != nil {
		return CircMinorEvent{}, err
	}
	if len(pos) < 2 {
		return CircMinorEvent{}, fmt.Errorf("%w: CIRC_MINOR needs ID and event: %q", ErrBadEvent, e.Text)
	}
	if !atoms(pos[:2]...) {
		return CircMinorEvent{}, fmt.Errorf("%w: CIRC_MINOR ID or event is not a plain word: %q", ErrBadEvent, e.Text)
	}
	c := CircMinorEvent{ID: pos[0], Event: pos[1], Purpose: kw["PURPOSE"], OldPurpose: kw["OLD_PURPOSE"], Keywords: kw}
	if len(pos) > 2 && pos[2] != "" {
		c.Path = strings.Split(pos[2], ",")
		if !atoms(c.Path...) {
			return CircMinorEvent{}, fmt.Errorf("%w: CIRC_MINOR path is not a list of plain words: %q", ErrBadEvent, e.Text)
		}
	}
	return c, nil
}

// AddrMapEvent is a parsed "650 ADDRMAP" event (control-spec §4.1.7), the
// answer to RESOLVE among others.
type AddrMapEvent struct {
	Address    string
	NewAddress string    // "<error>" when the lookup failed
	Expiry     time.Time // UTC (from EXPIRES= when present); zero for NEVER
	Never      bool      // Expiry was "NEVER"
	Error      string    // error= value ("yes", "internal", ...), "" if none
	Cached     bool      // CACHED="YES"
	StreamID   string
	Keywords   map[string]string
}

// Failed reports whether the mapping is an error answer.
func (a AddrMapEvent) Failed() bool { return a.NewAddress == "<error>" || a.Error != "" }

// ParseAddrMapEvent parses an ADDRMAP event.
func ParseAddrMapEvent(e Event) (AddrMapEvent, error) {
	pos, kw, err := eventArgs(e, "ADDRMAP")
	if err != nil {
		return AddrMapEvent{}, err
	}
	if len(pos) < 3 {
		return AddrMapEvent{}, fmt.Errorf("%w: ADDRMAP needs address, new address and expiry: %q", ErrBadEvent, e.Text)
	}
	a := AddrMapEvent{
		Address: pos[0], NewAddress: pos[1],
		Error:    kw["error"],
		Cached:   strings.EqualFold(kw["CACHED"], "YES"),
		StreamID: kw["STREAMID"],
		Keywords: kw,
	}
	const isoTime = "2006-01-02 15:04:05"
	switch {
	case pos[2] == "NEVER":
		a.Never = true
	case kw["EXPIRES"] != "":
		a.Expiry, _ = time.Parse(isoTime, kw["EXPIRES"])
	default:
		// Expiry is local time (a documented bug, §4.1.7).
		a.Expiry, _ = time.ParseInLocation(isoTime, pos[2], time.Local)
		a.Expiry = a.Expiry.UTC()
	}
	return a, nil
}

// StatusEvent is a parsed STATUS_GENERAL / STATUS_CLIENT / STATUS_SERVER
// event (control-spec §4.1.10).
type StatusEvent struct {
	Type     string // STATUS_CLIENT, ...
	Severity string // NOTICE, WARN, ERR
	Action   string // BOOTSTRAP, CIRCUIT_ESTABLISHED, ...
	Args     map[string]string
}

// ParseStatusEvent parses a STATUS_* event.
func ParseStatusEvent(e Event) (StatusEvent, error) {
	if !strings.HasPrefix(e.Type, "STATUS_") {
		return StatusEvent{}, fmt.Errorf("%w: %s is not a STATUS_ event", ErrBadEvent, e.Type)
	}
	pos, kw, err := eventArgs(e, e.Type)
	if err != nil {
		return StatusEvent{}, err
	}
	if len(pos) < 2 {
		return StatusEvent{}, fmt.Errorf("%w: %s needs severity and action: %q", ErrBadEvent, e.Type, e.Text)
	}
	return StatusEvent{Type: e.Type, Severity: pos[0], Action: pos[1], Args: kw}, nil
}

// ParseBootstrapPhase parses the value of GETINFO status/bootstrap-phase
// (control-spec §3.9, §5.5), e.g.
// `NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`.
func ParseBootstrapPhase(s string) (progress int, tag, summary string, err error) {
	args, err := ParseArgs(s)
	if err != nil {
		return 0, "", "", fmt.Errorf("%w: bootstrap phase: %w", ErrBadReply, err)
	}
	pos, kw := splitArgs(args)
	if len(pos) < 2 || pos[1] != "BOOTSTRAP" {
		return 0, "", "", fmt.Errorf("%w: bootstrap phase %q", ErrBadReply, clip([]byte(s)))
	}
	progress, err = strconv.Atoi(kw["PROGRESS"])
	if err != nil || progress < 0 || progress > 100 {
		return 0, "", "", fmt.Errorf("%w: bootstrap PROGRESS=%q", ErrBadReply, kw["PROGRESS"])
	}
	return progress, kw["TAG"], kw["SUMMARY"], nil
}

// Stream statuses (control-spec §4.1.2 StreamStatus), as StreamEvent.Status
// and GETINFO stream-status report them.
const (
	StreamNew            = "NEW"
	StreamNewResolve     = "NEWRESOLVE"
	StreamRemap          = "REMAP"
	StreamSentConnect    = "SENTCONNECT"
	StreamSentResolve    = "SENTRESOLVE"
	StreamSucceeded      = "SUCCEEDED"
	StreamFailed         = "FAILED"
	StreamClosed         = "CLOSED"
	StreamDetached       = "DETACHED"
	StreamControllerWait = "CONTROLLER_WAIT"
)

// Circuit statuses (control-spec §4.1.1 CircStatus), as CircEvent.Status
// and GETINFO circuit-status report them.
const (
	CircLaunched  = "LAUNCHED"
	CircBuilt     = "BUILT"
	CircGuardWait = "GUARD_WAIT"
	CircExtended  = "EXTENDED"
	CircFailed    = "FAILED"
	CircClosed    = "CLOSED"
)

// CIRC_MINOR events (control-spec §4.1.19 CircEvent).
const (
	CircMinorPurposeChanged = "PURPOSE_CHANGED"
	CircMinorCannibalized   = "CANNIBALIZED"
)

// Stream end reasons as STREAM events name them (control-spec §4.1.2
// REASON and REMOTE_REASON: tor-spec §6.3 RELAY_END reasons by name, plus
// END, "the other side sent RELAY_END", whose REMOTE_REASON is the real
// one). The numeric reasons for CloseStream are the EndReason* constants.
const (
	ReasonMisc           = "MISC"
	ReasonResolveFailed  = "RESOLVEFAILED"
	ReasonConnectRefused = "CONNECTREFUSED"
	ReasonExitPolicy     = "EXITPOLICY"
	ReasonDestroy        = "DESTROY"
	ReasonDone           = "DONE"
	ReasonTimeout        = "TIMEOUT"
	ReasonNoRoute        = "NOROUTE"
	ReasonInternal       = "INTERNAL"
	ReasonConnReset      = "CONNRESET"
	ReasonTorProtocol    = "TORPROTOCOL"
	ReasonEntryPolicy    = "ENTRYPOLICY"
	ReasonNetUnreachable = "NET_UNREACHABLE"
	ReasonEnd            = "END"
)
