// Package systest proves socksd's systemd deployment under a real systemd:
// it boots a throwaway systemd as PID 1 in new namespaces on an overlay of
// the host's root (box_test.go), joins Debian's tor in it to a private Tor
// network (test/tornet) run in the box's network namespace, and drives
// deploy/install.sh and the Debian package (deploy/deb) through install,
// reload, new identity, tor restart, watchdog, socket activation, the
// sandbox and removal. Run with `make test-systemd` (root,
// SOCKSD_SYSTEMD=1); without SOCKSD_SYSTEMD the tests skip.
package systest
