package netjail

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// tableName is the nftables table of the run's network namespace (the
// namespace is new, so the name cannot clash).
const tableName = "socksd_run"

// ipsDstNAT is IPS_DST_NAT (linux/netfilter/nf_conntrack_common.h): the
// connection's destination was rewritten.
const ipsDstNAT = 1 << 5

// installRules writes the namespace's whole ruleset in one netlink batch
// (github.com/google/nftables: the kernel's own interface, so no nft or
// iptables binary is needed at run time):
//
//	table inet socksd_run {
//	  chain redirect { type nat hook output priority -100
//	    ip  daddr != 127.0.0.0/8 meta l4proto tcp redirect to :port
//	    ip6 daddr != ::1         meta l4proto tcp redirect to :port }
//	  chain confine { type filter hook output priority 0
//	    ct status dnat accept
//	    ip  daddr != 127.0.0.0/8 drop
//	    ip6 daddr != ::1         drop }
//	}
//
// The nat chain sees a connection's first packet only and rewrites its
// destination to the forwarder. The filter chain still sees the original
// destination in the packets it is shown (observed on Linux 6.18), so it
// lets through what conntrack marks as redirected (IPS_DST_NAT) and drops
// everything else with a non-loopback destination: UDP, ICMP, raw. A drop in the output hook fails the sending system
// call with EPERM: the program gets an error at once, never a timeout.
func installRules(port uint16) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("netjail: nftables: %w", err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: tableName})
	nat := c.AddChain(&nftables.Chain{Name: "redirect", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	filter := c.AddChain(&nftables.Chain{Name: "confine", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter})

	c.AddRule(&nftables.Rule{Table: t, Chain: filter, Exprs: []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}})
	for _, fam := range []byte{unix.NFPROTO_IPV4, unix.NFPROTO_IPV6} {
		redirect := append(notLoopback(fam),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
			&expr.Redir{RegisterProtoMin: 1},
		)
		c.AddRule(&nftables.Rule{Table: t, Chain: nat, Exprs: redirect})
		drop := append(notLoopback(fam), &expr.Verdict{Kind: expr.VerdictDrop})
		c.AddRule(&nftables.Rule{Table: t, Chain: filter, Exprs: drop})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("netjail: installing nftables rules: %w", err)
	}
	return nil
}

// notLoopback matches packets of family fam whose destination is not a
// loopback address: 127.0.0.0/8 for IPv4, ::1 for IPv6.
func notLoopback(fam byte) []expr.Any {
	m := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{fam}},
	}
	if fam == unix.NFPROTO_IPV4 {
		return append(m,
			// IPv4 header: destination address at offset 16.
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{127, 0, 0, 0}},
		)
	}
	lo := netip.IPv6Loopback().As16()
	return append(m,
		// IPv6 header: destination address at offset 24.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: lo[:]},
	)
}
