// Package socks4 is the server side of SOCKS4 and SOCKS4a as Tor speaks
// them (socks-extensions.txt §1.1, §2), sans-IO: a Handshake is fed the
// bytes read so far and says how many it used, what to write back, and
// whether the request is complete. It knows nothing of sockets, Tor or
// logging.
//
// Wire format (the de-facto SOCKS4 protocol and its 4a extension):
//
//	+----+----+----+----+----+----+----+----+----+....+----+----+....+----+
//	| VN | CD | DSTPORT |      DSTIP        | USERID    |NUL | HOSTNAME |NUL |
//	+----+----+----+----+----+----+----+----+----+....+----+----+....+----+
//	   1    1      2              4           variable    1   (4a only)  1
//
// SOCKS4a is signalled by DSTIP = 0.0.0.x with x != 0; the hostname then
// follows the userid's NUL. Tor adds the command RESOLVE (0xF0), whose
// answer travels in the DSTIP field of the reply.
package socks4
