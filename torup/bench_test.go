package torup

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"socksd/torctl"
	"socksd/torctl/torctltest"
)

// BenchmarkAttachExisting measures one stream's way through socksd's
// control path with a built circuit for its key: from the moment the fake
// Tor writes "650 STREAM <id> NEW" on a net.Pipe until the attacher has
// processed the 250 answering its ATTACHSTREAM. Reports p50/p99 per
// stream: attaching is on every stream's critical path, so socksd's part
// should stay well under a millisecond (real tor adds its own).
func BenchmarkAttachExisting(b *testing.B) {
	s, client := torctltest.Pipe(b)
	s.Handle(`^(SETEVENTS|SETCONF|RESETCONF|SETCIRCUITPURPOSE|ATTACHSTREAM|CLOSECIRCUIT|CLOSESTREAM)`, func(string) string { return "250 OK" })
	s.Handle(`^GETINFO circuit-status$`, func(string) string { return "250-circuit-status=\n250 OK" })
	s.Handle(`^GETINFO stream-status$`, func(string) string { return "250-stream-status=\n250 OK" })
	s.Handle(`^EXTENDCIRCUIT 0$`, func(string) string { return "250 EXTENDED 101" })

	tor, err := New(Config{Control: "pipe", Launch: "never", AttachStreams: true,
		CircuitLifetime: time.Hour, SOCKSTimeout: time.Minute}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	attached := make(chan string, 1)
	tor.att.attachedHook = func(id string, _ time.Time) { attached <- id }
	// AttachStreams off for the controller only: no start-up resync, which
	// would race the first NEW (the attacher itself is active).
	ctl := newController(ControllerConfig{Addr: "pipe"}, tor.att, tor.m, tor.log)
	conn := torctl.NewConn(client)
	ctl.wg.Add(1)
	go func() {
		defer ctl.wg.Done()
		ctl.serve(conn)
	}()
	defer func() {
		ctl.close()
		tor.att.close()
	}()
	<-ctl.Ready()

	const local = "127.0.0.1:40001"
	r := newRegistration(keyOf("bench"), local)
	tor.reg.add(r)
	defer tor.reg.remove(r)
	wait := func(id string) {
		select {
		case got := <-attached:
			if got != id {
				b.Fatalf("attached %s, want %s", got, id)
			}
		case <-time.After(10 * time.Second):
			b.Fatalf("stream %s not attached; received %q", id, s.Received())
		}
	}
	newEv := func(id int) string {
		return "650 STREAM " + strconv.Itoa(id) + " NEW 0 127.0.0.1:80 SOURCE_ADDR=" + local +
			` PURPOSE=USER SOCKS_USERNAME="<torS0X>0" SOCKS_PASSWORD="` + r.key.String() +
			`" CLIENT_PROTOCOL=SOCKS5 NYM_EPOCH=0 SESSION_GROUP=-4 ISO_FIELDS=SOCKS_USERNAME,SOCKS_PASSWORD,CLIENTADDR,SESSION_GROUP,NYM_EPOCH`
	}
	// The key's circuit.
	s.Push(newEv(1))
	s.Push("650 CIRC 101 LAUNCHED BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL")
	for received(s, "SETCIRCUITPURPOSE") == 0 {
		time.Sleep(time.Millisecond) // bounded by the benchmark's own timeout
	}
	s.Push("650 CIRC 101 BUILT $AA~a,$BB~b,$CC~c BUILD_FLAGS=NEED_CAPACITY PURPOSE=CONTROLLER")
	wait("1")
	s.Push("650 STREAM 1 CLOSED 101 127.0.0.1:80 REASON=DONE")

	lat := make([]time.Duration, 0, b.N)
	id := 2
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		// Tor sends CONTROLLER_WAIT right behind NEW.
		s.Push(newEv(id) + "\n650 STREAM " + strconv.Itoa(id) + " CONTROLLER_WAIT 0 127.0.0.1:80")
		wait(strconv.Itoa(id))
		lat = append(lat, time.Since(start))
		b.StopTimer()
		s.Push(fmt.Sprintf("650 STREAM %d SUCCEEDED 101 127.0.0.1:80", id))
		s.Push(fmt.Sprintf("650 STREAM %d CLOSED 101 127.0.0.1:80 REASON=DONE", id))
		b.StartTimer()
		id++
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.5), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(q(1), "max-µs")
}
