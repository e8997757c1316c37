package isolation

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"

	"socksd/socksproto"
)

// Fields is the set of request properties a listener isolates on; it
// mirrors Tor's SocksPort flags (IsolateSOCKSAuth, IsolateClientAddr, ...).
type Fields uint16

// The bits are in the order of the fields table below.
const (
	SOCKSAuth      Fields = 1 << iota // IsolateSOCKSAuth (default on)
	ClientAddr                        // IsolateClientAddr (default on)
	ClientProtocol                    // IsolateClientProtocol
	DestPort                          // IsolateDestPort
	DestAddr                          // IsolateDestAddr
	SessionGroup                      // SessionGroup=N: informational; the group is always keyed (see Policy.Key)
	ClientApp                         // socksd only: uid + executable of the client
)

// Default is Tor's default for a SocksPort.
const Default = SOCKSAuth | ClientAddr

// field is one isolation field: its bit, its key in the configuration
// file, and what it adds to a key's digest.
type field struct {
	f    Fields
	name string // key in [isolation] and in a listener's isolation table
	// key writes the field's part of the digest with tags of its own;
	// nil for SessionGroup, which Policy.Key always writes.
	key func(e encoder, in Input)
}

// fields is every isolation field, in bit order. Adding one: a bit above,
// a row here, a field in Config and Override below with the row's name,
// and, when the field needs request data not yet in Input, that Input
// field and the line of dispatch's fillKey that sets it.
var fields = [...]field{
	{SOCKSAuth, "socks_auth", func(e encoder, in Input) {
		if bytes.Equal(in.Username, []byte(socksproto.TorIsolationUsername)) {
			// <torS0X>0: the password alone. Other <torS0X> formats
			// mean nothing to socksd and are hashed as a username.
			e.field('X', in.Password)
		} else {
			e.field('A', in.Username, in.Password)
		}
	}},
	{ClientAddr, "client_addr", func(e encoder, in Input) {
		e.field('C', addrBytes(in.ClientAddr))
	}},
	{ClientProtocol, "client_protocol", func(e encoder, in Input) {
		e.field('P', []byte(strings.ToLower(in.Protocol)))
	}},
	{DestPort, "dest_port", func(e encoder, in Input) {
		e.field('p', []byte{byte(in.DestPort >> 8), byte(in.DestPort)})
	}},
	{DestAddr, "dest_addr", func(e encoder, in Input) {
		tag, v := destBytes(in.DestHost, in.DestIP) // 'h' hostname, 'i' IP
		e.field(tag, v)
	}},
	{SessionGroup, "session_group", nil}, // a listener's session_group key, not a bool
	{ClientApp, "client_app", func(e encoder, in Input) {
		if !in.App.Known {
			e.field('u') // not identified
			return
		}
		var uid [4]byte
		binary.BigEndian.PutUint32(uid[:], in.App.UID)
		e.field('U', uid[:], []byte(in.App.Exe))
	}},
}

// Config is the [isolation] table of socksd's configuration file: the
// fields every listener isolates on unless its own table (Override) says
// otherwise, and keep_alive. Each bool's TOML key is a name in the fields
// table (TestConfigMatchesFields holds them together).
type Config struct {
	SOCKSAuth      bool `toml:"socks_auth"`
	ClientAddr     bool `toml:"client_addr"`
	ClientProtocol bool `toml:"client_protocol"`
	DestPort       bool `toml:"dest_port"`
	DestAddr       bool `toml:"dest_addr"`
	ClientApp      bool `toml:"client_app"`
	KeepAlive      bool `toml:"keep_alive"` // Policy.KeepAlive, not a field
}

// Override is a listener's isolation table: only the keys it sets
// override the [isolation] defaults.
type Override struct {
	SOCKSAuth      *bool `toml:"socks_auth"`
	ClientAddr     *bool `toml:"client_addr"`
	ClientProtocol *bool `toml:"client_protocol"`
	DestPort       *bool `toml:"dest_port"`
	DestAddr       *bool `toml:"dest_addr"`
	ClientApp      *bool `toml:"client_app"`
	KeepAlive      *bool `toml:"keep_alive"`
}

// DefaultConfig is Tor's SocksPort default: IsolateSOCKSAuth and
// IsolateClientAddr.
func DefaultConfig() Config { return Config{SOCKSAuth: true, ClientAddr: true} }

// Apply returns c with the keys o sets replaced; a nil o changes nothing.
func (c Config) Apply(o *Override) Config {
	if o == nil {
		return c
	}
	dst, src := reflect.ValueOf(&c).Elem(), reflect.ValueOf(o).Elem()
	for i := 0; i < src.NumField(); i++ {
		if p := src.Field(i); !p.IsNil() {
			dst.FieldByName(src.Type().Field(i).Name).SetBool(p.Elem().Bool())
		}
	}
	return c
}

// Policy is the listener policy c describes for the session group group
// (every listener isolates on its group, see Policy.SessionGroup).
func (c Config) Policy(group string) Policy {
	f := SessionGroup
	v := reflect.ValueOf(c)
	for i := 0; i < v.NumField(); i++ {
		if !v.Field(i).Bool() {
			continue
		}
		if b, ok := byName(v.Type().Field(i).Tag.Get("toml")); ok {
			f |= b
		}
	}
	return Policy{Fields: f, SessionGroup: group, KeepAlive: c.KeepAlive}
}

func byName(name string) (Fields, bool) {
	for _, n := range fields {
		if n.name == name {
			return n.f, true
		}
	}
	return 0, false
}

// String lists the enabled fields by their config names, comma-separated
// ("socks_auth,client_addr"); "none" when f is empty. Unknown bits are
// shown in hex so a bad value is visible rather than hidden.
func (f Fields) String() string {
	var names []string
	for _, n := range fields {
		if f&n.f != 0 {
			names = append(names, n.name)
			f &^= n.f
		}
	}
	if f != 0 {
		names = append(names, fmt.Sprintf("0x%x", uint16(f)))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}
