package tornet

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

const (
	sighup       = syscall.SIGHUP
	pollInterval = 100 * time.Millisecond
)

// poll calls cond every pollInterval until it returns true or an error,
// ctx ends, or a tor we started has exited (which is always fatal: a tor
// that died during bring-up will not come back).
func (n *Network) poll(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if err := n.deadProc(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("tornet: %s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("tornet: %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// deadProc returns an error naming a tor that has exited, with its last
// log lines.
func (n *Network) deadProc() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.procs {
		if p.Exited() {
			dir := filepath.Join(n.cfg.dir, p.name)
			return fmt.Errorf("tornet: tor %s (pid %d) exited: %v\n%s%s", p.name, p.PID(), p.Err(),
				tail(filepath.Join(dir, "stdout.log"), 10), tail(filepath.Join(dir, "notice.log"), 10))
		}
	}
	return nil
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return path + ":\n  " + strings.Join(ls, "\n  ") + "\n"
}

func (n *Network) waitListening(ctx context.Context, port int) error {
	return n.poll(ctx, fmt.Sprintf("port %d listening", port), func(ctx context.Context) (bool, error) {
		c, err := net.DialTimeout("tcp", addr(port), time.Second)
		if err != nil {
			return false, err
		}
		c.Close()
		return true, nil
	})
}

// waitFingerprint waits for tor to write DataDirectory/fingerprint (done
// at startup, before it opens its ORPort).
func waitFingerprint(ctx context.Context, dataDir string) (string, error) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if fp, err := relayFingerprint(dataDir); err == nil && len(fp) == 40 {
			return fp, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("tornet: no fingerprint in %s: %w", dataDir, ctx.Err())
		case <-t.C:
		}
	}
}

// waitConsensus waits until every authority serves a microdesc consensus
// listing every relay as Running and every exit with the Exit flag — all
// three, because exits and clients may ask any of them (dir-spec §3.4.1
// "s" lines).
func (n *Network) waitConsensus(ctx context.Context) error {
	want := n.consensusWant()
	hc := &http.Client{Timeout: 2 * time.Second}
	var lastMissing string // logged when it changes: shows which vote missed whom
	for _, a := range n.cfg.auths {
		url := fmt.Sprintf("http://%s/tor/status-vote/current/consensus-microdesc", addr(a.dirPort))
		err := n.poll(ctx, "consensus from "+a.name, func(ctx context.Context) (bool, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			// Tor answers "Accept-Encoding: gzip" (Go's default) with a
			// deflate body Go does not decode; ask for identity.
			req.Header.Set("Accept-Encoding", "identity")
			resp, err := hc.Do(req)
			if err != nil {
				return false, err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil || resp.StatusCode != http.StatusOK {
				return false, fmt.Errorf("%s: %v", resp.Status, err)
			}
			missing := consensusMissing(body, want)
			sort.Strings(missing)
			if m := fmt.Sprint(missing); m != lastMissing {
				lastMissing = m
				if len(missing) > 0 {
					n.logf("%s serves a consensus lacking %v", a.name, missing)
				}
			}
			if len(missing) > 0 {
				return false, fmt.Errorf("consensus lacks %v", missing)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// consensusWant maps every relay's nickname to whether it needs the Exit flag.
func (n *Network) consensusWant() map[string]bool {
	want := map[string]bool{}
	for _, a := range n.cfg.auths {
		want[a.name] = false
	}
	for _, e := range n.cfg.exits {
		want[e.Nickname] = true
	}
	return want
}

// consensusMissing returns the relays of want that the consensus does not
// list as Running (and Exit, where want says so).
func consensusMissing(body []byte, want map[string]bool) []string {
	ok := map[string]bool{}
	var cur string
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "r":
			cur = f[1]
		case "s":
			flags := map[string]bool{}
			for _, fl := range f[1:] {
				flags[fl] = true
			}
			needExit, known := want[cur]
			if known && flags["Running"] && (!needExit || flags["Exit"]) {
				ok[cur] = true
			}
		}
	}
	var missing []string
	for name := range want {
		if !ok[name] {
			missing = append(missing, name)
		}
	}
	return missing
}

// waitExitsHaveConsensus waits (bounded, not fatal) until every exit's
// own cached consensus lists all relays. Exits are directory caches; one
// still holding an earlier, incomplete consensus would hand it to the
// client, which then waits a whole voting interval for a better one (seen
// as a 10-20 s stall before "Bootstrapped 100%" on a loaded box).
func (n *Network) waitExitsHaveConsensus(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	want := n.consensusWant()
	for _, e := range n.cfg.exits {
		path := filepath.Join(n.cfg.dir, e.Nickname, "cached-microdesc-consensus")
		err := n.poll(ctx, e.Nickname+" cached consensus", func(context.Context) (bool, error) {
			b, err := os.ReadFile(path)
			if err != nil {
				return false, nil
			}
			return len(consensusMissing(b, want)) == 0, nil
		})
		if err != nil {
			n.logf("%s: %v; going on", e.Nickname, err)
			return
		}
	}
}

// waitLog waits until node's log file contains substr.
func (n *Network) waitLog(ctx context.Context, node, file, substr string) error {
	path := filepath.Join(n.cfg.dir, node, file)
	return n.poll(ctx, fmt.Sprintf("%q in %s", substr, path), func(context.Context) (bool, error) {
		b, err := os.ReadFile(path)
		return err == nil && bytes.Contains(b, []byte(substr)), nil
	})
}

// waitExitCircuit fetches /via through the client: the connection must
// come from one of our exits.
func (n *Network) waitExitCircuit(ctx context.Context) error {
	return n.poll(ctx, "a page through an exit", func(ctx context.Context) (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		via, err := Get(ctx, n.SOCKSAddr(), n.HTTPURL("/via"))
		if err != nil {
			return false, err
		}
		if _, ok := n.ExitByName(via); !ok {
			return false, fmt.Errorf("tornet: the test server saw the stream arrive from %q, not an exit", via)
		}
		return true, nil
	})
}

// waitOnion waits for the onion service's address and for its descriptor
// upload, then (with a client) for the page through the onion: a client
// asking before the upload gets F0 once and must ask again.
func (n *Network) waitOnion(ctx context.Context, fetch bool) error {
	hostFile := filepath.Join(n.cfg.dir, "hs", "hs_web", "hostname")
	err := n.poll(ctx, "onion hostname", func(context.Context) (bool, error) {
		b, err := os.ReadFile(hostFile)
		if err != nil {
			return false, nil
		}
		h := strings.TrimSpace(string(b))
		if len(h) != 62 || !strings.HasSuffix(h, ".onion") {
			return false, fmt.Errorf("bad hostname %q", h)
		}
		n.OnionHost = h
		return true, nil
	})
	if err != nil {
		return err
	}
	if err := n.waitLog(ctx, "hs", "rend.log", "HS descriptor stored successfully"); err != nil {
		return err
	}
	if !fetch {
		return nil
	}
	return n.poll(ctx, "the onion service through the client", func(ctx context.Context) (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		body, err := Get(ctx, n.SOCKSAddr(), n.OnionURL("/"))
		if err != nil {
			return false, err
		}
		if body != HelloBody {
			return false, fmt.Errorf("tornet: onion answered %q", body)
		}
		return true, nil
	})
}
