package torctl

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Authentication methods (control-spec §3.21).
const (
	MethodNull           = "NULL"
	MethodHashedPassword = "HASHEDPASSWORD"
	MethodCookie         = "COOKIE"
	MethodSafeCookie     = "SAFECOOKIE"
)

// HMAC keys of proposal 193 / control-spec §3.24.
const (
	safeCookieServerKey     = "Tor safe cookie authentication server-to-controller hash"
	safeCookieControllerKey = "Tor safe cookie authentication controller-to-server hash"
)

// cookieLen: "All authentication cookies are 32 bytes long. Controllers MUST
// NOT use the contents of a non-32-byte-long file" (control-spec §3.21).
const cookieLen = 32

// ProtocolInfo is the parsed PROTOCOLINFO 1 reply (control-spec §3.21).
type ProtocolInfo struct {
	PIVersion  string
	Methods    []string
	CookieFile string
	TorVersion string
}

// HasMethod reports whether Tor offered the authentication method m.
func (p *ProtocolInfo) HasMethod(m string) bool { return slices.Contains(p.Methods, m) }

// AuthOptions says how to authenticate.
type AuthOptions struct {
	CookieFile string // overrides PROTOCOLINFO's COOKIEFILE
	Password   string // for HASHEDPASSWORD
	// Methods, if set, limits the methods tried (e.g. {MethodCookie} to
	// force COOKIE where SAFECOOKIE is also offered). Order is ignored.
	Methods []string
}

func (o AuthOptions) allows(m string) bool { return o.Methods == nil || slices.Contains(o.Methods, m) }

// ProtocolInfo sends PROTOCOLINFO 1. Tor accepts it only once before
// authentication (§3.5), so the answer is cached and later calls (including
// the one inside Authenticate) reuse it.
func (c *Conn) ProtocolInfo(ctx context.Context) (*ProtocolInfo, error) {
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.release()
	return c.protocolInfoLocked(ctx)
}

// protocolInfoLocked runs with the turn held.
func (c *Conn) protocolInfoLocked(ctx context.Context) (*ProtocolInfo, error) {
	c.mu.Lock()
	pi := c.pinfo
	c.mu.Unlock()
	if pi != nil {
		return pi, nil
	}
	r, err := c.roundTrip(ctx, "PROTOCOLINFO 1")
	if err != nil {
		return nil, err
	}
	if err := r.err(); err != nil {
		return nil, err
	}
	pi, err = parseProtocolInfo(r)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.pinfo = pi
	c.mu.Unlock()
	return pi, nil
}

func parseProtocolInfo(r *Reply) (*ProtocolInfo, error) {
	pi := &ProtocolInfo{}
	for _, l := range r.Lines {
		word, rest, _ := strings.Cut(l.Text, " ")
		switch word {
		case "PROTOCOLINFO":
			pi.PIVersion = rest
		case "AUTH":
			args, err := ParseArgs(rest)
			if err != nil {
				return nil, fmt.Errorf("%w: PROTOCOLINFO AUTH: %w", ErrBadReply, err)
			}
			_, kw := splitArgs(args)
			if m := kw["METHODS"]; m != "" {
				pi.Methods = strings.Split(m, ",")
			}
			pi.CookieFile = kw["COOKIEFILE"]
		case "VERSION":
			args, err := ParseArgs(rest)
			if err != nil {
				return nil, fmt.Errorf("%w: PROTOCOLINFO VERSION: %w", ErrBadReply, err)
			}
			_, kw := splitArgs(args)
			pi.TorVersion = kw["Tor"]
		}
	}
	if pi.Methods == nil {
		return nil, fmt.Errorf("%w: PROTOCOLINFO without AUTH METHODS", ErrBadReply)
	}
	return pi, nil
}

// Authenticate runs PROTOCOLINFO 1 and AUTHENTICATE with the best method Tor
// offers and opts allows: SAFECOOKIE, COOKIE, HASHEDPASSWORD (opts.Password
// set), NULL. The method is chosen before anything is sent because Tor
// closes the connection after a failed AUTHENTICATE (§3.5). The caller's turn
// is held throughout, so no other command can slip between AUTHCHALLENGE and
// AUTHENTICATE.
func (c *Conn) Authenticate(ctx context.Context, opts AuthOptions) error {
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.release()
	pi, err := c.protocolInfoLocked(ctx)
	if err != nil {
		return err
	}

	cookiePath := opts.CookieFile
	if cookiePath == "" {
		cookiePath = pi.CookieFile
	}
	safe := pi.HasMethod(MethodSafeCookie) && opts.allows(MethodSafeCookie)
	plain := pi.HasMethod(MethodCookie) && opts.allows(MethodCookie)
	var cookieErr error
	if safe || plain {
		var cookie []byte
		cookie, cookieErr = readCookie(cookiePath)
		if cookieErr == nil {
			if safe {
				return c.safeCookie(ctx, cookie)
			}
			return c.authenticate(ctx, "AUTHENTICATE "+strings.ToUpper(hex.EncodeToString(cookie)))
		}
	}
	switch {
	case pi.HasMethod(MethodHashedPassword) && opts.allows(MethodHashedPassword) && opts.Password != "":
		return c.authenticate(ctx, "AUTHENTICATE "+Quote(opts.Password))
	case pi.HasMethod(MethodNull) && opts.allows(MethodNull):
		return c.authenticate(ctx, "AUTHENTICATE")
	case cookieErr != nil:
		return fmt.Errorf("%w (Tor offers %s): %w", ErrNoAuthMethod, strings.Join(pi.Methods, ","), cookieErr)
	case pi.HasMethod(MethodHashedPassword):
		return fmt.Errorf("%w: Tor wants HASHEDPASSWORD and no password was given", ErrNoAuthMethod)
	default:
		return fmt.Errorf("%w: Tor offers %s", ErrNoAuthMethod, strings.Join(pi.Methods, ","))
	}
}

// authenticate sends one command with the turn held and checks for 250.
func (c *Conn) authenticate(ctx context.Context, cmd string) error {
	r, err := c.roundTrip(ctx, cmd)
	if err != nil {
		return err
	}
	return r.err()
}

// safeCookie runs AUTHCHALLENGE SAFECOOKIE and AUTHENTICATE (proposal 193,
// control-spec §3.24) with the turn held.
func (c *Conn) safeCookie(ctx context.Context, cookie []byte) error {
	clientNonce := make([]byte, 32)
	src := c.rand
	if src == nil {
		src = rand.Reader
	}
	if _, err := io.ReadFull(src, clientNonce); err != nil {
		return fmt.Errorf("torctl: client nonce: %w", err)
	}
	r, err := c.roundTrip(ctx, "AUTHCHALLENGE SAFECOOKIE "+strings.ToUpper(hex.EncodeToString(clientNonce)))
	if err != nil {
		return err
	}
	if err := r.err(); err != nil {
		return err
	}
	serverHash, serverNonce, err := parseAuthChallenge(r)
	if err != nil {
		c.fail(err)
		return err
	}
	msg := make([]byte, 0, len(cookie)+len(clientNonce)+len(serverNonce))
	msg = append(append(append(msg, cookie...), clientNonce...), serverNonce...)
	if !hmac.Equal(serverHash, hmacSHA256(safeCookieServerKey, msg)) {
		// Whoever answered does not know the cookie: do not answer it, and
		// do not keep a connection that now expects only AUTHENTICATE.
		c.fail(ErrServerHash)
		return ErrServerHash
	}
	return c.authenticate(ctx, "AUTHENTICATE "+strings.ToUpper(hex.EncodeToString(hmacSHA256(safeCookieControllerKey, msg))))
}

func parseAuthChallenge(r *Reply) (serverHash, serverNonce []byte, err error) {
	text := r.Lines[len(r.Lines)-1].Text
	rest, ok := strings.CutPrefix(text, "AUTHCHALLENGE ")
	if !ok {
		return nil, nil, fmt.Errorf("%w: AUTHCHALLENGE reply %q", ErrBadReply, text)
	}
	args, err := ParseArgs(rest)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: AUTHCHALLENGE: %w", ErrBadReply, err)
	}
	_, kw := splitArgs(args)
	serverHash, err1 := hex.DecodeString(kw["SERVERHASH"])
	serverNonce, err2 := hex.DecodeString(kw["SERVERNONCE"])
	if err := errors.Join(err1, err2); err != nil || len(serverHash) != sha256.Size || len(serverNonce) != 32 {
		return nil, nil, fmt.Errorf("%w: AUTHCHALLENGE SERVERHASH/SERVERNONCE must be 32 hex bytes", ErrBadReply)
	}
	return serverHash, serverNonce, nil
}

func hmacSHA256(key string, msg []byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(msg)
	return m.Sum(nil)
}

func readCookie(path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: no cookie file known", ErrCookie)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCookie, err)
	}
	if len(b) != cookieLen {
		return nil, fmt.Errorf("%w: %s is %d bytes, want %d", ErrCookie, path, len(b), cookieLen)
	}
	return b, nil
}
