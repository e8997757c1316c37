package isolation

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownField is returned by ParseFields for a name that is not an
// isolation field.
var ErrUnknownField = errors.New("isolation: unknown field")

// fieldNames are the config keys of the [isolation] table, in bit order.
var fieldNames = [...]struct {
	f    Fields
	name string
}{
	{SOCKSAuth, "socks_auth"},
	{ClientAddr, "client_addr"},
	{ClientProtocol, "client_protocol"},
	{DestPort, "dest_port"},
	{DestAddr, "dest_addr"},
	{SessionGroup, "session_group"},
	{ClientApp, "client_app"},
}

// String lists the enabled fields by their config names, comma-separated
// ("socks_auth,client_addr"); "none" when f is empty. Unknown bits are
// shown in hex so a bad value is visible rather than hidden.
func (f Fields) String() string {
	var names []string
	for _, n := range fieldNames {
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

// ParseFields is the inverse of String for config-style lists: it accepts
// the names socks_auth, client_addr, client_protocol, dest_port, dest_addr,
// session_group and client_app (case-insensitive). keep_alive is not a key
// field (it changes how long a key keeps its circuit, not which streams
// share it), so it is rejected here like any unknown name.
func ParseFields(names []string) (Fields, error) {
	var f Fields
next:
	for _, s := range names {
		for _, n := range fieldNames {
			if strings.EqualFold(s, n.name) {
				f |= n.f
				continue next
			}
		}
		return 0, fmt.Errorf("%w %q", ErrUnknownField, s)
	}
	return f, nil
}
