package torup

import (
	"context"
	"errors"
	"strings"
	"time"

	"socksd/torctl"
)

// ctlAdapter drives a *torctl.Conn for the attacher.
type ctlAdapter struct {
	c *torctl.Conn
}

var _ control = ctlAdapter{}

// ctlErr converts Tor's non-2xx replies to *controlError.
func ctlErr(err error) error {
	var te *torctl.Error
	if errors.As(err, &te) {
		return &controlError{Code: te.Code, Text: te.Text}
	}
	return err
}

func (a ctlAdapter) AttachStream(ctx context.Context, streamID, circID string) error {
	return ctlErr(a.c.AttachStream(ctx, streamID, circID))
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
		return id, ctlErr(err)
	}
	if err := a.c.SetCircuitPurpose(ctx, id, purpose); err != nil {
		// The circuit may already have failed (a CIRC event tells);
		// otherwise close it rather than use a circuit Tor may share.
		if te := ctlErr(err); te != err {
			_ = a.c.CloseCircuit(ctx, id)
		}
		return "", ctlErr(err)
	}
	return id, nil
}

func (a ctlAdapter) CloseCircuit(ctx context.Context, circID string, ifUnused bool) error {
	if !ifUnused {
		return ctlErr(a.c.CloseCircuit(ctx, circID))
	}
	return ctlErr(a.c.CloseCircuitIfUnused(ctx, circID))
}

func (a ctlAdapter) ExitPolicy(ctx context.Context, fp string) (torctl.ExitPolicy, error) {
	p, err := a.c.ExitPolicy(ctx, fp)
	return p, ctlErr(err)
}

func (a ctlAdapter) CloseStream(ctx context.Context, streamID string, reason int) error {
	return ctlErr(a.c.CloseStream(ctx, streamID, reason))
}

func (a ctlAdapter) StreamStatus(ctx context.Context) ([]statusEntry, error) {
	m, err := a.c.GetInfo(ctx, "stream-status")
	if err != nil {
		return nil, ctlErr(err)
	}
	return parseStreamStatus(m["stream-status"]), nil
}

// circuitStatus returns GETINFO circuit-status as entries whose Target is
// the exit's fingerprint.
func (a ctlAdapter) circuitStatus(ctx context.Context) ([]statusEntry, error) {
	m, err := a.c.GetInfo(ctx, "circuit-status")
	if err != nil {
		return nil, ctlErr(err)
	}
	return parseCircuitStatus(m["circuit-status"]), nil
}

// parseStreamStatus parses GETINFO stream-status (control-spec §3.9: one
// "StreamID SP StreamStatus SP CircuitID SP Target" per line).
func parseStreamStatus(s string) []statusEntry {
	var out []statusEntry
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		out = append(out, statusEntry{ID: f[0], Status: f[1], CircID: f[2], Target: f[3]})
	}
	return out
}

// parseCircuitStatus parses GETINFO circuit-status (control-spec §3.9: the
// CIRC event's syntax without "650 CIRC"); Target is the exit fingerprint.
func parseCircuitStatus(s string) []statusEntry {
	var out []statusEntry
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		e := statusEntry{ID: f[0], Status: f[1]}
		if len(f) > 2 && !strings.Contains(f[2], "=") {
			e.Target = exitOf(strings.Split(f[2], ","))
		}
		out = append(out, e)
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
