//go:build unix

package torup

import "golang.org/x/sys/unix"

// usableSocket reports whether this process may connect to the Unix socket
// at path (write permission on it, search permission on its directories):
// a socket Tor made for another group is passed over for a TCP SocksPort
// rather than failing every stream.
func usableSocket(path string) bool {
	return unix.Access(path, unix.W_OK) == nil
}
