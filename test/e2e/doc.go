// Package e2e holds socksd's end-to-end tests: the real socksd binary, real
// clients (curl, tor-resolve, torsocks, proxychains4, x/net/proxy, headless
// Chromium) and a real private Tor network (test/tornet) on loopback.
//
// # Running
//
//	SOCKSD_TORNET=1 go test -race -count=1 ./test/e2e     # make test does this
//
// Without SOCKSD_TORNET=1 every test here skips with a message. TestMain
// brings up ONE network for the whole package run (about 15-20 s) and
// builds ./cmd/socksd once (with -race when the tests run with -race);
// tests then start as many socksd processes as they like against it.
// Environment knobs: SOCKSD_BIN (use this socksd binary instead of
// building), TORNET_KEYCACHE (reuse authority keys between runs, saves
// seconds), SOCKSD_KEEP=1 (keep the network's directory and logs).
//
// # Writing a test
//
//	func TestMyFeature(t *testing.T) {
//		n := needTornet(t)                 // skips unless SOCKSD_TORNET=1
//		s := startSocksd(t, FrontendConfig) // or your own TOML template
//		r := curl(t, "--socks5-hostname", s.Addr, n.NameURL("/via"))
//		r.wantOK(t)
//		if _, ok := n.ExitByName(r.Stdout); !ok { t.Fatalf(...) }
//	}
//
// startSocksd(t, tmpl) renders tmpl with text/template and the fields of
// SocksdVars ({{.Listen}}, {{.Metrics}}, {{.DNS}}, {{.StateDir}},
// {{.TorSOCKS}}, {{.TorSOCKSPlain}}, {{.TorControl}}, {{.Cookie}},
// {{.ClientTorrc}}): fresh loopback ports, a per-test state dir, and the
// network's client tor. It writes the config, starts the binary through
// the network's spawner (killed with the test process, stopped at cleanup),
// waits until the SOCKS listener accepts, and at cleanup stops it with
// SIGTERM and fails the test if socksd exited non-zero or its log has a
// DATA RACE report. On failure the config and log are copied to
// test/artifacts/<TestName>/. FrontendConfig is the plain chaining setup
// (control = "none", socks = the ExtendedErrors SocksPort,
// reject_internal = false so the loopback test server is reachable).
//
// Other helpers: curl(t, args...) and runCmd(t, timeout, env, name,
// args...) run a client and return a cmdResult (Stdout, Stderr, Code);
// artifactDir(t, name) is a kept directory for screenshots and such. The
// network itself (tornet.Network) gives ports, the onion host, the exits,
// PinToExit (route a hostname through a chosen exit), HTTPLog and DNSLog
// (what the test servers saw), and Control (a control-port connection to
// the client tor).
//
// # Teardown
//
// Normal end: TestMain stops every socksd, then every tor, by PID (SIGTERM,
// SIGKILL after 5 s). Ctrl-C or SIGTERM to the test binary: the same, then
// exit 2. A `go test -timeout` panic or a SIGKILL of the test binary runs no
// Go code: every child was started with Pdeathsig=SIGTERM from a thread
// that lives as long as the process, so the kernel stops them at once
// (checked: no tor left 1 s after a timeout panic); each tor also has
// __OwningControllerProcess = the test binary's PID and exits within 15 s
// on its own. Only the network's temp dir (/tmp/tornet-*) stays behind.
// Networks get their ports from flock'ed blocks in 20000-29999, so two test
// packages (or `make tornet` beside `make test`) never collide; socksd
// ports come from 10000-19999.
//
// # Exits and source addresses
//
// Each exit has OutboundBindAddressExit 127.0.0.N, but tor skips that bind
// for loopback destinations (connection.c), so all exits reach 127.0.0.1
// from 127.0.0.1. The test HTTP server therefore identifies the exit by
// the process owning the other end of the TCP connection (/proc/net/tcp +
// /proc/PID/fd): /via answers "exit1". The bind address still matters: for
// a non-loopback destination tor binds 127.0.0.N and Linux fails the
// connect() with EINVAL, which is what keeps the exits on loopback.
//
// The test HTTP server (the exits' target and the onion's backend): GET /
// "hello from tornet\n", /via the tor that made the connection ("exit0",
// "exit1", "hs"; "-" for a direct connection), /whoami the source IP,
// /headers, /bytes?n=N, /page.html. The exits' DNS zone: example.test and
// *.example.test → 127.0.0.1 (host.example.test also PTR), rev.example.test
// → 198.51.100.7 (+PTR), *.invalid NXDOMAIN, the rest REFUSED.
package e2e
