package netjail

import (
	"net"

	"github.com/miekg/dns"

	"socksd/resolve"
)

// dnsTTL is the TTL of virtual answers. The table keeps a name's
// addresses for the whole run, so any TTL is correct; five minutes keeps
// chatty programs from asking again and again.
const dnsTTL = 300

// refusalText goes with every refusal as an RFC 8914 extended error, so a
// user running dig inside sees why.
const refusalText = "socksd run answers only A and AAAA (names are resolved by the Tor exit)"

// resolver is the DNS server inside the namespace. It answers from its
// table alone: no query ever leaves the helper.
type resolver struct{ t *table }

// ServeDNS implements dns.Handler.
func (r resolver) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if resp := r.answer(req); resp != nil {
		w.WriteMsg(resp)
	}
}

// answer builds the response to req; nil means send nothing (a response
// or garbage that is not worth one).
func (r resolver) answer(req *dns.Msg) *dns.Msg {
	if req.Response {
		return nil
	}
	q, m, _ := resolve.Admit(req)
	if m != nil {
		if m.Rcode == dns.RcodeRefused {
			return refuse(m) // say why, as for every other refusal here
		}
		return m
	}
	m = resolve.Reply(req, dns.RcodeSuccess)
	name, err := resolve.NormalizeName(q.Name)
	switch q.Qtype {
	case dns.TypeA, dns.TypeAAAA:
		if err != nil || resolve.NeverAnswered(name) {
			m.Rcode = dns.RcodeNameError
			return m
		}
		a, err := r.t.addr(name, q.Qtype == dns.TypeAAAA)
		if err != nil {
			m.Rcode = dns.RcodeServerFailure
			return m
		}
		hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: dnsTTL}
		if a.Is4() {
			m.Answer = []dns.RR{&dns.A{Hdr: hdr, A: net.IP(a.AsSlice())}}
		} else {
			m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: net.IP(a.AsSlice())}}
		}
		return m
	case dns.TypePTR:
		// A virtual address stands for the name it was handed out for;
		// anything else would need a lookup outside the run.
		if a, ok := resolve.ParseReverse(name); err == nil && ok {
			if n, ok := r.t.lookup(a); ok {
				hdr := dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: dnsTTL}
				m.Answer = []dns.RR{&dns.PTR{Hdr: hdr, Ptr: dns.Fqdn(n)}}
				return m
			}
		}
	}
	return refuse(m)
}

// refuse turns m into REFUSED with an extended error that says why.
func refuse(m *dns.Msg) *dns.Msg {
	m.Rcode = dns.RcodeRefused
	m.Answer = nil
	if opt := m.IsEdns0(); opt != nil {
		opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNotSupported, ExtraText: refusalText})
	}
	return m
}
