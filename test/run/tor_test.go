package run

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// streamEv is one "650 STREAM ID Status CircID Target ..." (control-spec
// §4.1.2).
type streamEv struct{ ID, Status, Circ, Target, Line string }

// streamWatch is the test's own control connection to the client tor,
// recording STREAM events: Tor's account of which circuit each stream
// used, independent of socksd (the code under test).
type streamWatch struct {
	conn    net.Conn
	mu      sync.Mutex
	events  []streamEv
	changed chan struct{}
}

func watchStreams(t *testing.T) *streamWatch {
	t.Helper()
	n := needTornet(t)
	cookie, err := os.ReadFile(n.CookiePath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", n.ControlAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	for _, cmd := range []string{"AUTHENTICATE " + hex.EncodeToString(cookie), "SETEVENTS STREAM"} {
		fmt.Fprintf(c, "%s\r\n", cmd)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "250") {
			t.Fatalf("control %q: %q %v", cmd, line, err)
		}
	}
	c.SetReadDeadline(time.Time{})
	w := &streamWatch{conn: c, changed: make(chan struct{})}
	go func() {
		for {
			line, err := r.ReadString('\n')
			w.mu.Lock()
			if err == nil && strings.HasPrefix(line, "650 STREAM ") {
				f := strings.Fields(line)
				if len(f) >= 6 {
					w.events = append(w.events, streamEv{ID: f[2], Status: f[3], Circ: f[4], Target: f[5], Line: strings.TrimSpace(line)})
				}
			}
			close(w.changed)
			w.changed = make(chan struct{})
			w.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return w
}

// succeeded waits up to 30 s for a stream to target to succeed and returns
// its NEW event (which carries the SOCKS credentials) and its SUCCEEDED
// event (the circuit; its target may be the exit's REMAP).
func (w *streamWatch) succeeded(t *testing.T, target string) (newEv, done streamEv) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		w.mu.Lock()
		for _, e := range w.events {
			if e.Status == "NEW" && strings.EqualFold(e.Target, target) {
				newEv = e
			}
			if newEv.ID != "" && e.ID == newEv.ID && e.Status == "SUCCEEDED" {
				w.mu.Unlock()
				return newEv, e
			}
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no stream to %s succeeded within 30 s; events:\n%s", target, w.dump())
		}
	}
}

func (w *streamWatch) dump() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, e := range w.events {
		b.WriteString(e.Line + "\n")
	}
	return b.String()
}

// circuitPurpose returns the PURPOSE of circuit id from GETINFO
// circuit-status ("" if Tor does not list it).
func circuitPurpose(t *testing.T, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := needTornet(t).Control(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.GetInfo(ctx, "circuit-status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(s, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == id {
			for _, kv := range f {
				if p, ok := strings.CutPrefix(kv, "PURPOSE="); ok {
					return p
				}
			}
		}
	}
	return ""
}
