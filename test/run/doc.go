// Package run proves `socksd run` end to end on the private Tor network
// (test/tornet): a statically linked Go program, curl and git run inside
// the jail reach the network's HTTP server and onion service only through
// socksd's circuits, a canary host in a network namespace of the test's
// own never sees a packet from inside, identities isolate as promised, and
// the jail's exit status, signals and cleanup behave. Set SOCKSD_TORNET=1
// to run it (make test does); the canary and the unprivileged test need
// root, and skip with a message without it.
package run
