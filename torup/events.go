package torup

import (
	"context"
	"strings"
	"time"

	"socksd/torctl"
)

// streamEvent is the part of a control-spec §4.1.2 STREAM event the
// attacher uses. The controller converts torctl's parsed events into it, so
// the attacher's state machine can be driven directly by unit tests.
type streamEvent struct {
	ID           string
	Status       string // NEW, NEWRESOLVE, CONTROLLER_WAIT, SENTCONNECT, ...
	CircID       string
	TargetHost   string
	TargetPort   uint16
	Reason       string
	RemoteReason string
	SourceAddr   string // only on NEW / NEWRESOLVE (tornet README)
	Purpose      string // only on NEW / NEWRESOLVE
	Username     string
	Password     string
	// At is when socksd read the event from Tor (zero in tests that feed
	// events directly): attach latency counts from here.
	At time.Time
}

// circEvent is the part of a control-spec §4.1.1 CIRC event the attacher
// uses.
type circEvent struct {
	ID     string
	Status string // LAUNCHED, EXTENDED, BUILT, GUARD_WAIT, FAILED, CLOSED
	Path   []string
	Reason string
}

// exitOf returns the last hop of a circuit path ("$FP~nick" or "$FP"),
// reduced to its fingerprint so two spellings of one relay compare equal.
func exitOf(path []string) string {
	if len(path) == 0 {
		return ""
	}
	last := path[len(path)-1]
	if i := strings.IndexAny(last, "~="); i >= 0 {
		last = last[:i]
	}
	return last
}

// isOnion reports whether a stream target host is an onion address
// (address-spec §2: ".onion" suffix, case-insensitive, optional final dot).
func isOnion(host string) bool { return hasSuffixFold(host, ".onion") }

// isExit reports whether a host is a ".exit" name (address-spec §2:
// "name.fingerprint.exit"), case-insensitive, optional final dot.
func isExit(host string) bool { return hasSuffixFold(host, ".exit") }

func hasSuffixFold(host, suffix string) bool {
	host = strings.TrimSuffix(host, ".")
	return len(host) >= len(suffix) && strings.EqualFold(host[len(host)-len(suffix):], suffix)
}

// torRoutes reports whether a stream to host must be handed back to Tor
// with circuit 0 instead of being attached to a socksd circuit, and the
// outcome label for the metric.
//
//   - .onion: Tor builds the rendezvous circuit itself; attaching the
//     stream to any other circuit gets 551 and kills it (tornet README).
//   - .exit: the name asks for one exit relay. Tor honours it (for a name
//     it mapped itself or a controller's MAPADDRESS always, for a literal
//     one only with AllowDotExit, address-spec §2) by building a circuit
//     to that exit; a socksd circuit ends at some other exit. Handed back,
//     the stream is still isolated by the credentials carrying its key, and
//     Tor applies its own AllowDotExit refusal to a literal .exit.
func torRoutes(host string) (string, bool) {
	switch {
	case isOnion(host):
		return outOnion, true
	case isExit(host):
		return outExit, true
	}
	return "", false
}

// internalPurpose reports whether a stream is one Tor makes for itself
// (control-spec §4.1.2 PURPOSE): Tor attaches these on its own even with
// __LeaveStreamsUnattached, so the attacher must leave them alone.
func internalPurpose(p string) bool {
	switch p {
	case "DIR_FETCH", "DIR_UPLOAD", "DIRPORT_TEST":
		return true
	}
	return false
}

// statusEntry is one line of GETINFO stream-status (control-spec §3.9:
// "StreamID SP StreamStatus SP CircuitID SP Target").
type statusEntry struct {
	ID, Status, CircID, Target string
}

// control is the part of a control connection the attacher drives. The
// production implementation wraps *torctl.Conn; tests script it.
// Errors that are Tor's non-2xx replies are *torctl.Error.
type control interface {
	AttachStream(ctx context.Context, streamID, circID string) error
	// ExtendCircuit builds a new circuit with Tor's own path selection
	// (control-spec §3.10 "EXTENDCIRCUIT 0") with the given purpose
	// ("general" or "controller") and returns its ID.
	ExtendCircuit(ctx context.Context, purpose string) (string, error)
	// CloseCircuit closes a circuit; ifUnused asks Tor to close it only
	// when no stream uses it (control-spec §3.15 IfUnused).
	CloseCircuit(ctx context.Context, circID string, ifUnused bool) error
	// CloseStream closes a stream with a relay END reason (tor-spec §6.3).
	CloseStream(ctx context.Context, streamID string, reason int) error
	StreamStatus(ctx context.Context) ([]statusEntry, error)
	// ExitPolicy returns the policy summaries of the exit relay with
	// fingerprint fp, as Tor knows them (its microdescriptor).
	ExitPolicy(ctx context.Context, fp string) (torctl.ExitPolicy, error)
}
