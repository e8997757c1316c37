package tornet

import (
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// The exits' only resolver (wired through ServerDNSResolvConfFile). It
// answers a fixed test zone and never forwards anything anywhere, so a name
// resolves at an exit or nowhere. Tor randomises the case of the names it
// asks (ServerDNSRandomizeCase, 0x20 hack) and checks the answer echoes it, so
// matching is case-insensitive and answers reuse the question's spelling.
//
//	example.test, *.example.test   A 127.0.0.1
//	host.example.test              A 127.0.0.1, PTR 127.0.0.1 -> host.example.test
//	rev.example.test               A 198.51.100.7, PTR 198.51.100.7 -> rev.example.test
//	*.invalid                      NXDOMAIN
//	anything else                  REFUSED
//
// AAAA (and any other type) for a zone name gets NOERROR with no answer.
const (
	ZoneName    = "example.test"
	HostName    = "host.example.test"
	RevName     = "rev.example.test"
	RevAddr     = "198.51.100.7" // TEST-NET-2: unroutable here; only our DNS ever sees it
	NXName      = "nx.invalid"
	dnsTTL      = 60
	ptrLoopback = "1.0.0.127.in-addr.arpa."
	ptrRev      = "7.100.51.198.in-addr.arpa."
)

// DNSQuery is one question the test DNS server received.
type DNSQuery struct {
	Name  string // as asked (exits randomise case)
	Type  string // "A", "PTR", ...
	Rcode string // "NOERROR", "NXDOMAIN", "REFUSED"
}

type dnsServer struct {
	udp, tcp *dns.Server
	mu       sync.Mutex
	queries  []DNSQuery
}

func startDNS(addr string) (*dnsServer, error) {
	s := &dnsServer{}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return nil, err
	}
	h := dns.HandlerFunc(s.serve)
	s.udp = &dns.Server{PacketConn: pc, Handler: h}
	s.tcp = &dns.Server{Listener: ln, Handler: h}
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	return s, nil
}

func (s *dnsServer) close() {
	s.udp.Shutdown()
	s.tcp.Shutdown()
}

func (s *dnsServer) log() []DNSQuery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]DNSQuery(nil), s.queries...)
}

func (s *dnsServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = false
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeRefused
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	m.Rcode, m.Answer = answer(q)
	s.mu.Lock()
	s.queries = append(s.queries, DNSQuery{
		Name:  strings.TrimSuffix(q.Name, "."),
		Type:  dns.TypeToString[q.Qtype],
		Rcode: dns.RcodeToString[m.Rcode],
	})
	s.mu.Unlock()
	w.WriteMsg(m)
}

func answer(q dns.Question) (int, []dns.RR) {
	name := strings.ToLower(q.Name)
	hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: dnsTTL}
	switch {
	case name == ptrLoopback || name == ptrRev:
		if q.Qtype != dns.TypePTR {
			return dns.RcodeSuccess, nil
		}
		target := HostName + "."
		if name == ptrRev {
			target = RevName + "."
		}
		return dns.RcodeSuccess, []dns.RR{&dns.PTR{Hdr: hdr, Ptr: target}}
	case name == ZoneName+"." || strings.HasSuffix(name, "."+ZoneName+"."):
		if q.Qtype != dns.TypeA {
			return dns.RcodeSuccess, nil // NODATA
		}
		ip := net.IPv4(127, 0, 0, 1)
		if name == RevName+"." {
			ip = net.ParseIP(RevAddr)
		}
		return dns.RcodeSuccess, []dns.RR{&dns.A{Hdr: hdr, A: ip.To4()}}
	case strings.HasSuffix(name, ".invalid."):
		return dns.RcodeNameError, nil
	default:
		return dns.RcodeRefused, nil
	}
}
