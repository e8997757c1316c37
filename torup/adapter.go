package torup

import (
	"context"
	"errors"
	"time"

	"socksd/torctl"
)

// ctlAdapter drives a *torctl.Conn for the attacher. Tor's non-2xx replies
// come back as torctl's *torctl.Error.
type ctlAdapter struct {
	c *torctl.Conn
}

var _ control = ctlAdapter{}

func (a ctlAdapter) AttachStream(ctx context.Context, streamID, circID string) error {
	return a.c.AttachStream(ctx, streamID, circID)
}

// ExtendCircuit launches a circuit on a path Tor picks, then makes it a
// controller circuit. Tor refuses "EXTENDCIRCUIT 0 purpose=controller"
// without an explicit path (551 Couldn't start circuit: tor 0.4.9 picks no
// exit for that purpose), so the circuit is launched as GENERAL and its
// purpose changed at once (control-spec §3.11 SETCIRCUITPURPOSE), long
// before it can be BUILT. As CONTROLLER, Tor never puts a stream of its own
// choosing on it: only streams socksd attaches share it.
func (a ctlAdapter) ExtendCircuit(ctx context.Context, purpose string) (string, error) {
	id, err := a.c.ExtendCircuit(ctx, "0", nil, "")
	if err != nil || purpose == "" || purpose == "general" {
		return id, err
	}
	if err := a.c.SetCircuitPurpose(ctx, id, purpose); err != nil {
		// The circuit may already have failed (a CIRC event tells);
		// otherwise close it rather than use a circuit Tor may share.
		var te *torctl.Error
		if errors.As(err, &te) {
			_ = a.c.CloseCircuit(ctx, id)
		}
		return "", err
	}
	return id, nil
}

func (a ctlAdapter) CloseCircuit(ctx context.Context, circID string, ifUnused bool) error {
	if !ifUnused {
		return a.c.CloseCircuit(ctx, circID)
	}
	return a.c.CloseCircuitIfUnused(ctx, circID)
}

func (a ctlAdapter) ExitPolicy(ctx context.Context, fp string) (torctl.ExitPolicy, error) {
	return a.c.ExitPolicy(ctx, fp)
}

func (a ctlAdapter) CloseStream(ctx context.Context, streamID string, reason int) error {
	return a.c.CloseStream(ctx, streamID, reason)
}

func (a ctlAdapter) StreamStatus(ctx context.Context) ([]statusEntry, error) {
	m, err := a.c.GetInfo(ctx, "stream-status")
	if err != nil {
		return nil, err
	}
	return streamEntries(m["stream-status"]), nil
}

// circuitStatus returns GETINFO circuit-status as entries whose Target is
// the exit's fingerprint.
func (a ctlAdapter) circuitStatus(ctx context.Context) ([]statusEntry, error) {
	m, err := a.c.GetInfo(ctx, "circuit-status")
	if err != nil {
		return nil, err
	}
	return circuitEntries(m["circuit-status"]), nil
}

// streamEntries reduces GETINFO stream-status (torctl.ParseStreamStatus)
// to what the resync needs. A line torctl cannot read ends the list: Tor
// writes none, and the entries before it are still right.
func streamEntries(s string) []statusEntry {
	ss, _ := torctl.ParseStreamStatus(s)
	out := make([]statusEntry, 0, len(ss))
	for _, e := range ss {
		out = append(out, statusEntry{ID: e.ID, Status: e.Status, CircID: e.CircID, Target: e.Target})
	}
	return out
}

// circuitEntries reduces GETINFO circuit-status (torctl.ParseCircuitStatus);
// Target is the exit fingerprint.
func circuitEntries(s string) []statusEntry {
	cs, _ := torctl.ParseCircuitStatus(s)
	out := make([]statusEntry, 0, len(cs))
	for _, c := range cs {
		out = append(out, statusEntry{ID: c.ID, Status: c.Status, Target: exitOf(c.Path)})
	}
	return out
}

// toStreamEvent converts a parsed torctl event.
func toStreamEvent(e torctl.StreamEvent, at time.Time) streamEvent {
	return streamEvent{
		At: at,
		ID: e.ID, Status: e.Status, CircID: e.CircID, TargetHost: e.TargetHost, TargetPort: e.TargetPort,
		Reason: e.Reason, RemoteReason: e.RemoteReason, SourceAddr: e.SourceAddr,
		Purpose: e.Purpose, Username: e.SOCKSUsername, Password: e.SOCKSPassword,
	}
}

func toCircEvent(e torctl.CircEvent) circEvent {
	return circEvent{ID: e.ID, Status: e.Status, Path: e.Path, Reason: e.Reason}
}
