package torctl

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"socksd/torctl/torctltest"
)

var update = flag.Bool("update", false, "rewrite the expected part of testdata/*.txt transcripts")

// Golden transcripts (testdata/*.txt), Caddy style. Above the "----------"
// line: what the fake Tor sends, one block per command it receives, blocks
// separated by blank lines, "#" lines are comments. Below: the transcript
// the client must produce — "C: " lines are what it sent, "=> " lines what
// the API returned (written by the file's driver below), and "=> event"
// lines the events it delivered, drained after the fake hangs up.
//
// The SAFECOOKIE client nonce is fixed at 32 bytes of 0x11 and the cookie is
// testdata/cookie (bytes 00..1f), so the HMACs in the files are constants
// (computed independently with Python's hmac module).
const goldenSep = "----------"

type goldenLog struct {
	mu    sync.Mutex
	lines []string
}

func (g *goldenLog) add(format string, args ...any) {
	g.mu.Lock()
	g.lines = append(g.lines, fmt.Sprintf(format, args...))
	g.mu.Unlock()
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

var goldenDrivers = map[string]func(ctx context.Context, c *Conn, log *goldenLog){
	"auth_safecookie":         driveAuth,
	"auth_safecookie_badhash": driveAuth,
	"auth_cookie":             driveAuth,
	"auth_hashedpassword":     driveAuth,
	"auth_null":               driveAuth,
	"getinfo_datablock": func(ctx context.Context, c *Conn, log *goldenLog) {
		m, err := c.GetInfo(ctx, "version", "config-text", "net/listeners/socks")
		log.add("=> GetInfo: %s", errText(err))
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			log.add("=>   %s = %q", k, m[k])
		}
	},
	"event_interleaved": func(ctx context.Context, c *Conn, log *goldenLog) {
		log.add("=> SetEvents: %s", errText(c.SetEvents(ctx, "STREAM", "CIRC")))
		m, err := c.GetInfo(ctx, "circuit-status", "stream-status")
		log.add("=> GetInfo: %s circuit-status=%q stream-status=%q", errText(err), m["circuit-status"], m["stream-status"])
		id, err := c.ExtendCircuit(ctx, "0", nil, "")
		log.add("=> ExtendCircuit: %q %s", id, errText(err))
	},
	"mapaddress": func(ctx context.Context, c *Conn, log *goldenLog) {
		for _, p := range [][2]string{{"0.0.0.0", "example.test"}, {"::", "example.test"}, {".", "example.test"}, {"xxx", "@@@"}} {
			got, err := c.MapAddress(ctx, p[0], p[1])
			log.add("=> MapAddress(%s, %s): %q %s", p[0], p[1], got, errText(err))
		}
		m, err := c.GetInfo(ctx, "address-mappings/control")
		log.add("=> GetInfo: %q %s", m["address-mappings/control"], errText(err))
		got, err := c.MapAddress(ctx, "127.252.21.219", "127.252.21.219")
		log.add("=> MapAddress(unmap): %q %s", got, errText(err))
	},
	"attachstream_errors": func(ctx context.Context, c *Conn, log *goldenLog) {
		for _, circ := range []string{"94", "95", "96", "97", "0"} {
			err := c.AttachStream(ctx, "153", circ)
			code := 250
			if e := (*Error)(nil); errors.As(err, &e) {
				code = e.Code
			}
			log.add("=> AttachStream(153, %s): code %d: %s", circ, code, errText(err))
		}
	},
	"resolve_addrmap": func(ctx context.Context, c *Conn, log *goldenLog) {
		log.add("=> SetEvents: %s", errText(c.SetEvents(ctx, "ADDRMAP")))
		log.add("=> Resolve(example.test): %s", errText(c.Resolve(ctx, "example.test", false)))
		log.add("=> Resolve(nx.invalid): %s", errText(c.Resolve(ctx, "nx.invalid", false)))
		log.add("=> Resolve(reverse 198.51.100.7): %s", errText(c.Resolve(ctx, "198.51.100.7", true)))
		log.add("=> SetEvents(off): %s", errText(c.SetEvents(ctx)))
	},
}

func driveAuth(ctx context.Context, c *Conn, log *goldenLog) {
	err := c.Authenticate(ctx, AuthOptions{CookieFile: "testdata/cookie", Password: `hunter "2"`})
	log.add("=> Authenticate: %s", errText(err))
}

// logEvent renders an event, parsed when the type has a parser.
func logEvent(log *goldenLog, e Event) {
	log.add("=> event %s", e.Text)
	if e.Lines[0].Sep == '+' {
		log.add("=>   data=%q", e.Lines[0].Data)
	}
	for _, l := range e.Lines[1:] {
		log.add("=>   %03d%c%s data=%q", l.Code, l.Sep, l.Text, l.Data)
	}
	switch e.Type {
	case "ADDRMAP":
		a, err := ParseAddrMapEvent(e)
		log.add("=>   addrmap %s -> %s failed=%v error=%q stream=%s %s", a.Address, a.NewAddress, a.Failed(), a.Error, a.StreamID, errText(err))
	case "STREAM":
		s, err := ParseStreamEvent(e)
		log.add("=>   stream %s %s circ=%s host=%s port=%d user=%q %s", s.ID, s.Status, s.CircID, s.TargetHost, s.TargetPort, s.SOCKSUsername, errText(err))
	case "CIRC":
		ce, err := ParseCircEvent(e)
		log.add("=>   circ %s %s hops=%d purpose=%s %s", ce.ID, ce.Status, len(ce.Path), ce.Purpose, errText(err))
	}
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txt")
		t.Run(name, func(t *testing.T) {
			drive := goldenDrivers[name]
			if drive == nil {
				t.Fatalf("no driver for %s", f)
			}
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			script, want, ok := strings.Cut(string(raw), "\n"+goldenSep+"\n")
			if !ok {
				t.Fatalf("%s: no %s line", f, goldenSep)
			}
			got := runGolden(t, script, drive)
			if *update {
				out := script + "\n" + goldenSep + "\n" + got
				if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("%s: transcript differs\n--- got\n%s--- want\n%s", f, got, want)
			}
		})
	}
}

// parseScript splits the fake's part into reply blocks. Inside a data block
// (after a "NNN+" line, up to "."), blank and "#" lines are data.
func parseScript(script string) []string {
	var blocks []string
	var cur []string
	inData := false
	flush := func() {
		if len(cur) > 0 {
			blocks = append(blocks, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	for _, l := range strings.Split(script, "\n") {
		switch {
		case inData:
			cur = append(cur, l)
			inData = l != "."
		case strings.HasPrefix(l, "#"):
		case strings.TrimSpace(l) == "":
			flush()
		default:
			cur = append(cur, l)
			inData = len(l) >= 4 && l[3] == '+'
		}
	}
	flush()
	return blocks
}

func runGolden(t *testing.T, script string, drive func(context.Context, *Conn, *goldenLog)) string {
	ctx := testCtx(t)
	s, nc := torctltest.Pipe(t)
	c := NewConn(nc)
	c.rand = bytes.NewReader(bytes.Repeat([]byte{0x11}, 32))
	defer c.Close()
	log := &goldenLog{}
	for i, block := range parseScript(script) {
		s.ExpectFunc(fmt.Sprintf("command #%d", i+1), func(l string) bool {
			log.add("C: %s", l)
			return true
		}, func(string) string { return block })
	}
	s.Handle(".*", func(l string) string {
		log.add("C: %s (unscripted)", l)
		return `510 Unrecognized command`
	})
	drive(ctx, c, log)
	s.DropConn()
	for e := range c.Events() {
		logEvent(log, e)
	}
	log.add("=> connection: %s", errText(c.Err()))
	return strings.Join(log.lines, "\n") + "\n"
}
