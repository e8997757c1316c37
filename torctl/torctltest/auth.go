package torctltest

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// TorVersion is the version the fake reports in PROTOCOLINFO.
const TorVersion = "0.4.9.11"

// ProtocolInfoReply is Tor's PROTOCOLINFO 1 answer for the given methods
// ("COOKIE,SAFECOOKIE") and cookie path (control-spec §3.21).
func ProtocolInfoReply(methods, cookieFile string) string {
	auth := "250-AUTH METHODS=" + methods
	if cookieFile != "" {
		auth += " COOKIEFILE=" + quote(cookieFile)
	}
	return "250-PROTOCOLINFO 1\n" + auth + "\n250-VERSION Tor=\"" + TorVersion + "\"\n250 OK"
}

// AcceptNullAuth scripts PROTOCOLINFO (METHODS=NULL) and a bare
// AUTHENTICATE.
func (s *Server) AcceptNullAuth() *Server {
	s.Expect("PROTOCOLINFO 1", ProtocolInfoReply("NULL", ""))
	return s.Expect("AUTHENTICATE", "250 OK")
}

// AcceptCookieAuth scripts PROTOCOLINFO (METHODS=COOKIE) and AUTHENTICATE
// with the hex cookie (either case).
func (s *Server) AcceptCookieAuth(cookie []byte, cookieFile string) *Server {
	s.Expect("PROTOCOLINFO 1", ProtocolInfoReply("COOKIE", cookieFile))
	want := "AUTHENTICATE " + strings.ToUpper(hex.EncodeToString(cookie))
	return s.ExpectFunc(fmt.Sprintf("%q", want), func(l string) bool { return strings.EqualFold(l, want) }, func(string) string { return "250 OK" })
}

// AcceptSafeCookieAuth scripts PROTOCOLINFO (METHODS=COOKIE,SAFECOOKIE),
// AUTHCHALLENGE SAFECOOKIE answered with a correct server hash for
// serverNonce (32 bytes), and the AUTHENTICATE the client must then send
// (proposal 193). A wrong AUTHENTICATE gets "515 Authentication failed" and
// a closed connection, as from Tor.
func (s *Server) AcceptSafeCookieAuth(cookie []byte, cookieFile string, serverNonce []byte) *Server {
	s.Expect("PROTOCOLINFO 1", ProtocolInfoReply("COOKIE,SAFECOOKIE", cookieFile))
	var want string
	s.ExpectFunc("AUTHCHALLENGE SAFECOOKIE <nonce>", authChallengeRe.MatchString, func(l string) string {
		reply, auth, err := SafeCookieChallenge(cookie, l, serverNonce)
		if err != nil {
			return "512 " + err.Error()
		}
		want = auth
		return reply
	})
	return s.ExpectFunc("AUTHENTICATE <safecookie hmac>", func(l string) bool { return strings.HasPrefix(l, "AUTHENTICATE") }, func(l string) string {
		if !strings.EqualFold(l, want) {
			return "515 Authentication failed: Safe cookie response did not match expected value."
		}
		return "250 OK"
	})
}

var authChallengeRe = regexp.MustCompile(`^AUTHCHALLENGE SAFECOOKIE ([0-9A-Fa-f]+)$`)

// SafeCookieChallenge computes, for an "AUTHCHALLENGE SAFECOOKIE <hex>"
// command, Tor's reply line and the AUTHENTICATE command the client must
// answer with (control-spec §3.24).
func SafeCookieChallenge(cookie []byte, cmd string, serverNonce []byte) (reply, authenticate string, err error) {
	m := authChallengeRe.FindStringSubmatch(cmd)
	if m == nil {
		return "", "", fmt.Errorf("not an AUTHCHALLENGE SAFECOOKIE command: %q", cmd)
	}
	clientNonce, err := hex.DecodeString(m[1])
	if err != nil {
		return "", "", fmt.Errorf("client nonce: %w", err)
	}
	msg := append(append(append([]byte{}, cookie...), clientNonce...), serverNonce...)
	server := mac("Tor safe cookie authentication server-to-controller hash", msg)
	client := mac("Tor safe cookie authentication controller-to-server hash", msg)
	reply = "250 AUTHCHALLENGE SERVERHASH=" + strings.ToUpper(hex.EncodeToString(server)) +
		" SERVERNONCE=" + strings.ToUpper(hex.EncodeToString(serverNonce))
	return reply, "AUTHENTICATE " + strings.ToUpper(hex.EncodeToString(client)), nil
}

func mac(key string, msg []byte) []byte {
	h := hmac.New(sha256.New, []byte(key))
	h.Write(msg)
	return h.Sum(nil)
}

// quote is a minimal QuotedString encoder (backslash and DQUOTE).
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// lineReader reads the client's command lines (CRLF or LF), bounded like
// Tor's own 1 MiB limit.
type lineReader struct{ br *bufio.Reader }

func newLineReader(r io.Reader) *lineReader { return &lineReader{br: bufio.NewReader(r)} }

func (lr *lineReader) next() (string, error) {
	var b []byte
	for {
		frag, err := lr.br.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > 1<<20 {
			return "", fmt.Errorf("torctltest: command line over 1 MiB")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
	}
}
