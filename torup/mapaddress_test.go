package torup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"socksd/internal/testutil"
	"socksd/torctl"
)

// mapReply answers a MAPADDRESS the way tor does: one line per pair, in
// order; a pair whose target is "bad..test" gets its own 512 line, and a
// null source gets 127.1.0.<n>.
func mapReply(cmd string, n *atomic.Int32) string {
	pairs := strings.Fields(strings.TrimPrefix(cmd, "MAPADDRESS "))
	var lines []string
	for _, p := range pairs {
		from, to, _ := strings.Cut(p, "=")
		if to == "bad..test" {
			lines = append(lines, "512-syntax error: invalid address '"+to+"'")
			continue
		}
		if from == "0.0.0.0" {
			from = fmt.Sprintf("127.1.0.%d", n.Add(1))
		}
		lines = append(lines, "250-"+from+"="+to)
	}
	last := lines[len(lines)-1]
	lines[len(lines)-1] = last[:3] + " " + last[4:]
	return strings.Join(lines, "\n")
}

// While one MAPADDRESS is in flight, later calls queue and go out together
// in one command; each caller gets its own answer or error.
func TestMapAddressBatches(t *testing.T) {
	s := fakeTor(t, "127.0.0.1:10", "")
	var n atomic.Int32
	gate := make(chan struct{})
	entered := make(chan struct{})
	var cmds []string // written by the handler (under the server's lock) only
	var first atomic.Bool
	s.Handle(`^MAPADDRESS `, func(cmd string) string {
		cmds = append(cmds, cmd)
		if first.CompareAndSwap(false, true) {
			close(entered)
			<-gate // Tor is slow with the first one
		}
		return mapReply(cmd, &n)
	})
	tor := startFakeTor(t, s.Addr(), nil)
	testutil.WaitFor(t, "connected", tor.ctl.Connected)
	ctx := context.Background()

	type result struct {
		got string
		err error
	}
	res := make([]result, 6)
	var wg sync.WaitGroup
	call := func(i int, from, to string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := tor.ctl.MapAddress(ctx, from, to)
			res[i] = result{got, err}
		}()
	}
	call(0, "0.0.0.0", "first.test")
	<-entered
	call(1, "0.0.0.0", "a.test")
	call(2, "0.0.0.0", "bad..test")
	call(3, "127.1.9.9", "b.test")
	call(4, "[fe80::1]", "c.onion")
	call(5, "127.1.9.8", "127.1.9.8") // unmap
	testutil.WaitFor(t, "five calls queued", func() bool {
		tor.ctl.maps.mu.Lock()
		defer tor.ctl.maps.mu.Unlock()
		return len(tor.ctl.maps.queue) == 5
	})
	close(gate)
	wg.Wait()

	if len(cmds) != 2 {
		t.Fatalf("%d MAPADDRESS commands %q, want 2 (one, then the five queued)", len(cmds), cmds)
	}
	if got := strings.Count(cmds[1], "="); got != 5 {
		t.Errorf("second command %q carries %d pairs, want 5", cmds[1], got)
	}
	if res[0].err != nil || res[0].got != "127.1.0.1" {
		t.Errorf("first: %+v", res[0])
	}
	var te *torctl.Error
	if !errors.As(res[2].err, &te) || te.Code != 512 {
		t.Errorf("bad name: %v, want its own 512", res[2].err)
	}
	for i, want := range map[int]string{1: "127.1.0.2", 3: "127.1.9.9", 4: "[fe80::1]", 5: "127.1.9.8"} {
		if res[i].err != nil || res[i].got != want {
			t.Errorf("call %d: %q, %v; want %q", i, res[i].got, res[i].err, want)
		}
	}
}

func TestMapAddressWholeCommandRefused(t *testing.T) {
	s := fakeTor(t, "127.0.0.1:10", "")
	gate := make(chan struct{})
	entered := make(chan struct{})
	var first atomic.Bool
	s.Handle(`^MAPADDRESS `, func(cmd string) string {
		if first.CompareAndSwap(false, true) {
			close(entered)
			<-gate
			return "250 127.1.0.1=first.test"
		}
		return "512 syntax error: not enough arguments to mapaddress."
	})
	tor := startFakeTor(t, s.Addr(), nil)
	testutil.WaitFor(t, "connected", tor.ctl.Connected)
	errs := make(chan error, 3)
	go func() { _, err := tor.ctl.MapAddress(context.Background(), "0.0.0.0", "first.test"); errs <- err }()
	<-entered
	for _, name := range []string{"a.test", "b.test"} {
		go func() { _, err := tor.ctl.MapAddress(context.Background(), "0.0.0.0", name); errs <- err }()
	}
	testutil.WaitFor(t, "two calls queued", func() bool {
		tor.ctl.maps.mu.Lock()
		defer tor.ctl.maps.mu.Unlock()
		return len(tor.ctl.maps.queue) == 2
	})
	close(gate)
	if err := <-errs; err != nil {
		t.Errorf("first call: %v", err)
	}
	for range 2 {
		if err := <-errs; !torctl.IsCode(err, 512) {
			t.Errorf("batched call: %v, want the command's 512", err)
		}
	}
}

func TestMapAddressOddArgumentsAndDown(t *testing.T) {
	s := fakeTor(t, "127.0.0.1:10", "")
	var cmds atomic.Int32
	var n atomic.Int32
	s.Handle(`^MAPADDRESS `, func(cmd string) string { cmds.Add(1); return mapReply(cmd, &n) })
	tor := startFakeTor(t, s.Addr(), nil)
	testutil.WaitFor(t, "connected", tor.ctl.Connected)
	if _, err := tor.ctl.MapAddress(context.Background(), "0.0.0.0", "a b.test"); !errors.Is(err, torctl.ErrBadArgument) {
		t.Errorf("a space: %v, want torctl's ErrBadArgument", err)
	}
	if got, err := tor.ctl.MapAddress(context.Background(), "0.0.0.0", "x.test"); err != nil || got != "127.1.0.1" {
		t.Errorf("plain: %q, %v", got, err)
	}
	tor.Close()
	if _, err := tor.ctl.MapAddress(context.Background(), "0.0.0.0", "y.test"); !errors.Is(err, ErrControlDown) {
		t.Errorf("after Close: %v, want ErrControlDown", err)
	}
	if c := cmds.Load(); c != 1 {
		t.Errorf("%d MAPADDRESS commands, want 1", c)
	}
}
