package torctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// KV is one configuration assignment for SETCONF.
type KV struct{ Key, Value string }

// GetInfo asks for keys (control-spec §3.9) and returns key → value for both
// reply forms: "250-key=value" and "250+key=" with a data block (the value is
// then the dot-unstuffed data, lines joined by "\n").
func (c *Conn) GetInfo(ctx context.Context, keys ...string) (map[string]string, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: GETINFO needs a key", ErrBadArgument)
	}
	for _, k := range keys {
		if err := checkToken("GETINFO key", k); err != nil {
			return nil, err
		}
	}
	r, err := c.Do(ctx, "GETINFO "+strings.Join(keys, " "))
	if err != nil {
		return nil, err
	}
	return parseGetInfo(r)
}

func parseGetInfo(r *Reply) (map[string]string, error) {
	out := make(map[string]string, len(r.Lines))
	for i, l := range r.Lines {
		if i == len(r.Lines)-1 && l.Sep == ' ' && l.Text == "OK" {
			break
		}
		k, v, ok := strings.Cut(l.Text, "=")
		if !ok {
			return out, fmt.Errorf("%w: GETINFO line %q", ErrBadReply, clip([]byte(l.Text)))
		}
		if l.Sep == '+' {
			// "250+key=" CRLF data: the value is the data block.
			v = l.Data
		}
		out[k] = v
	}
	return out, nil
}

// GetConf returns the values of one configuration key (control-spec §3.3):
// one per "250 key=value" line, in order; a line "250 key" (the key is
// at its default, which has no value) gives "".
func (c *Conn) GetConf(ctx context.Context, key string) ([]string, error) {
	if err := checkToken("GETCONF key", key); err != nil {
		return nil, err
	}
	r, err := c.Do(ctx, "GETCONF "+key)
	if err != nil {
		return nil, err
	}
	return parseGetConf(r, key), nil
}

func parseGetConf(r *Reply, key string) []string {
	var out []string
	for _, l := range r.Lines {
		k, v, _ := strings.Cut(l.Text, "=")
		if strings.EqualFold(k, key) {
			out = append(out, v)
		}
	}
	return out
}

// SetEvents subscribes to exactly the given events (control-spec §3.4); none
// turns every event off. Events are always extended since Tor 0.2.2.1.
func (c *Conn) SetEvents(ctx context.Context, events ...string) error {
	for _, e := range events {
		if err := checkToken("event", e); err != nil {
			return err
		}
	}
	_, err := c.Do(ctx, strings.TrimSpace("SETEVENTS "+strings.Join(events, " ")))
	return err
}

// SetConf sets configuration keys (control-spec §3.1). Values are sent as
// QuotedStrings; an empty Value sends the bare key, which Tor takes as
// "reset to 0/NULL".
func (c *Conn) SetConf(ctx context.Context, kv ...KV) error {
	cmd, err := confCommand("SETCONF", kv)
	if err != nil {
		return err
	}
	_, err = c.Do(ctx, cmd)
	return err
}

// ResetConf resets configuration keys to their defaults (control-spec §3.2).
func (c *Conn) ResetConf(ctx context.Context, keys ...string) error {
	kv := make([]KV, len(keys))
	for i, k := range keys {
		kv[i] = KV{Key: k}
	}
	cmd, err := confCommand("RESETCONF", kv)
	if err != nil {
		return err
	}
	_, err = c.Do(ctx, cmd)
	return err
}

func confCommand(verb string, kv []KV) (string, error) {
	if len(kv) == 0 {
		return "", fmt.Errorf("%w: %s needs a key", ErrBadArgument, verb)
	}
	var b strings.Builder
	b.WriteString(verb)
	for _, p := range kv {
		if err := checkToken("config key", p.Key); err != nil {
			return "", err
		}
		if strings.ContainsAny(p.Key, "=\"") {
			return "", fmt.Errorf("%w: config key %q", ErrBadArgument, p.Key)
		}
		b.WriteByte(' ')
		b.WriteString(p.Key)
		if p.Value != "" {
			b.WriteByte('=')
			b.WriteString(Quote(p.Value))
		}
	}
	return b.String(), nil
}

// MapAddress maps from to to (control-spec §3.8) and returns the original
// address as Tor reports it. With a null address as from ("0.0.0.0", "::" or
// "."; note that real tor takes "::0" and "[::]" literally) Tor picks a
// virtual address and that is what is returned, verbatim: IPv6 addresses
// come bracketed ("[fea0:…]"). MAPADDRESS x=x removes the mapping of x.
func (c *Conn) MapAddress(ctx context.Context, from, to string) (string, error) {
	if err := checkMapPair(from, to); err != nil {
		return "", err
	}
	r, err := c.Do(ctx, "MAPADDRESS "+from+"="+to)
	if err != nil {
		return "", err
	}
	// One pair asked, one "250 a=b" line expected.
	return mappedAddr(r.Lines[len(r.Lines)-1].Text)
}

// mappedAddr reads the original address from one MAPADDRESS answer line
// "from=to".
func mappedAddr(text string) (string, error) {
	got, _, ok := strings.Cut(text, "=")
	if !ok || got == "" {
		return "", fmt.Errorf("%w: MAPADDRESS reply %q", ErrBadReply, clip([]byte(text)))
	}
	return got, nil
}

// MapResult is one pair's answer to MapAddresses: the original address as
// Tor reports it (see MapAddress), or that pair's error.
type MapResult struct {
	Addr string
	Err  error
}

// MapAddresses maps several pairs (KV{Key: from, Value: to}) with one
// MAPADDRESS (control-spec §3.8), which Tor answers with one line per pair,
// in order: "250 from=to", or an error for that pair alone. A pair whose
// arguments would break the line grammar is not sent and gets
// ErrBadArgument; one with odd but valid arguments (quotes, non-ASCII) is
// sent alone, so it can never spoil the shared command. err is for the
// shared command as a whole: the connection failed, or the reply does not
// have one line per pair sent (then every pair in it gets err).
func (c *Conn) MapAddresses(ctx context.Context, pairs []KV) ([]MapResult, error) {
	out := make([]MapResult, len(pairs))
	var sb strings.Builder
	sb.WriteString("MAPADDRESS")
	var sent, alone []int
	for i, p := range pairs {
		// Plain words (see atoms) cannot make Tor's parser read a pair
		// as more or less than one address.
		switch err := checkMapPair(p.Key, p.Value); {
		case err != nil:
			out[i].Err = err
		case !atoms(p.Key, p.Value):
			alone = append(alone, i)
		default:
			sb.WriteString(" " + p.Key + "=" + p.Value)
			sent = append(sent, i)
		}
	}
	for _, i := range alone {
		out[i].Addr, out[i].Err = c.MapAddress(ctx, pairs[i].Key, pairs[i].Value)
	}
	if len(sent) == 0 {
		return out, nil
	}
	r, err := c.Do(ctx, sb.String())
	if r == nil || len(r.Lines) != len(sent) {
		if err == nil {
			err = fmt.Errorf("%w: MAPADDRESS answered %d lines for %d pairs", ErrBadReply, lenLines(r), len(sent))
		}
		for _, i := range sent {
			out[i].Err = err
		}
		return out, err
	}
	for j, i := range sent {
		l := r.Lines[j]
		if l.Code/100 != 2 {
			out[i].Err = &Error{Code: l.Code, Text: l.Text}
			continue
		}
		out[i].Addr, out[i].Err = mappedAddr(l.Text)
	}
	return out, nil
}

func lenLines(r *Reply) int {
	if r == nil {
		return 0
	}
	return len(r.Lines)
}

// checkMapPair checks one MAPADDRESS pair's arguments.
func checkMapPair(from, to string) error {
	if err := checkToken("MAPADDRESS address", from); err != nil {
		return err
	}
	if err := checkToken("MAPADDRESS address", to); err != nil {
		return err
	}
	if strings.Contains(from, "=") {
		return fmt.Errorf("%w: MAPADDRESS address contains '='", ErrBadArgument)
	}
	return nil
}

// AttachStream attaches a stream to a circuit; circuit "0" hands it back to
// Tor (control-spec §3.13). Errors are *Error: 552 unknown stream or
// circuit, 555 stream not in an attachable state, 551 could not attach.
func (c *Conn) AttachStream(ctx context.Context, streamID, circID string) error {
	if err := checkToken("stream ID", streamID); err != nil {
		return err
	}
	if err := checkToken("circuit ID", circID); err != nil {
		return err
	}
	_, err := c.Do(ctx, "ATTACHSTREAM "+streamID+" "+circID)
	return err
}

// ExtendCircuit builds (circID "0") or extends a circuit (control-spec
// §3.10) and returns its ID from "250 EXTENDED <id>". path may be empty (Tor
// picks one); purpose may be "" (general), "general" or "controller".
func (c *Conn) ExtendCircuit(ctx context.Context, circID string, path []string, purpose string) (string, error) {
	if err := checkToken("circuit ID", circID); err != nil {
		return "", err
	}
	cmd := "EXTENDCIRCUIT " + circID
	if len(path) > 0 {
		for _, p := range path {
			if err := checkToken("path element", p); err != nil {
				return "", err
			}
			if strings.Contains(p, ",") {
				return "", fmt.Errorf("%w: path element contains ','", ErrBadArgument)
			}
		}
		cmd += " " + strings.Join(path, ",")
	}
	if purpose != "" {
		if err := checkToken("purpose", purpose); err != nil {
			return "", err
		}
		cmd += " purpose=" + purpose
	}
	r, err := c.Do(ctx, cmd)
	if err != nil {
		return "", err
	}
	id, ok := strings.CutPrefix(r.Lines[len(r.Lines)-1].Text, "EXTENDED ")
	if id, _, _ = strings.Cut(id, " "); !ok || id == "" {
		return "", fmt.Errorf("%w: EXTENDCIRCUIT reply %q", ErrBadReply, r.Lines[len(r.Lines)-1].Text)
	}
	return id, nil
}

// CloseCircuit closes a circuit (control-spec §3.17).
func (c *Conn) CloseCircuit(ctx context.Context, circID string) error {
	if err := checkToken("circuit ID", circID); err != nil {
		return err
	}
	_, err := c.Do(ctx, "CLOSECIRCUIT "+circID)
	return err
}

// RELAY_END reasons (tor-spec §6.3) for CloseStream.
const (
	EndReasonMisc          = 1
	EndReasonResolveFailed = 2
	EndReasonConnRefused   = 3
	EndReasonExitPolicy    = 4
	EndReasonDestroy       = 5
	EndReasonDone          = 6
	EndReasonTimeout       = 7
	EndReasonNoRoute       = 8
	EndReasonInternal      = 10
	EndReasonTorProtocol   = 13
)

// CloseCircuitIfUnused closes a circuit only if no stream uses it
// (control-spec §3.17, flag IfUnused).
func (c *Conn) CloseCircuitIfUnused(ctx context.Context, circID string) error {
	if err := checkToken("circuit ID", circID); err != nil {
		return err
	}
	_, err := c.Do(ctx, "CLOSECIRCUIT "+circID+" IfUnused")
	return err
}

// SetCircuitPurpose changes a circuit's purpose, "general" or "controller"
// (control-spec §3.11). tor 0.4.9 refuses "EXTENDCIRCUIT 0
// purpose=controller" without an explicit path (551), so a controller
// circuit is built as general and then re-purposed.
func (c *Conn) SetCircuitPurpose(ctx context.Context, circID, purpose string) error {
	if err := checkToken("circuit ID", circID); err != nil {
		return err
	}
	if err := checkToken("purpose", purpose); err != nil {
		return err
	}
	_, err := c.Do(ctx, "SETCIRCUITPURPOSE "+circID+" purpose="+purpose)
	return err
}

// CloseStream closes a stream with a RELAY_END reason (control-spec §3.16).
func (c *Conn) CloseStream(ctx context.Context, streamID string, reason int) error {
	if err := checkToken("stream ID", streamID); err != nil {
		return err
	}
	if reason < 0 || reason > 255 {
		return fmt.Errorf("%w: stream close reason %d", ErrBadArgument, reason)
	}
	_, err := c.Do(ctx, "CLOSESTREAM "+streamID+" "+strconv.Itoa(reason))
	return err
}

// Resolve asks Tor to resolve name, or the address name back to a hostname
// when reverse is set (control-spec §3.20). Tor answers "250 OK" at once;
// the result arrives later as an ADDRMAP event (see ParseAddrMapEvent).
func (c *Conn) Resolve(ctx context.Context, name string, reverse bool) error {
	if err := checkToken("RESOLVE address", name); err != nil {
		return err
	}
	if strings.Contains(name, "=") {
		return fmt.Errorf("%w: RESOLVE address contains '='", ErrBadArgument)
	}
	cmd := "RESOLVE " + name
	if reverse {
		cmd = "RESOLVE mode=reverse " + name
	}
	_, err := c.Do(ctx, cmd)
	return err
}

// Signal sends a signal such as "NEWNYM" (control-spec §3.7).
func (c *Conn) Signal(ctx context.Context, sig string) error {
	if err := checkToken("signal", sig); err != nil {
		return err
	}
	_, err := c.Do(ctx, "SIGNAL "+sig)
	return err
}

// TakeOwnership makes Tor exit when this connection closes (control-spec
// §3.23).
func (c *Conn) TakeOwnership(ctx context.Context) error {
	_, err := c.Do(ctx, "TAKEOWNERSHIP")
	return err
}
