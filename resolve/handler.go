package resolve

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"socksd/socks5"
)

// ednsSize is the UDP payload size we advertise (DNS flag day 2020); our
// answers are one record and never come near it.
const ednsSize = 1232

// outcome is what a query turned into, for metrics and debug logs.
type outcome struct {
	qtype  string // A, AAAA, PTR, ANY, other, none
	result string // noerror, nodata, nxdomain, formerr, notimp, refused, servfail
	source string // cache, new, tor, local
}

// ServeDNS answers one query (dns.Handler). It never forwards anything to a
// DNS server: answers come from the table, from Tor, or are refusals.
func (b *Bridge) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if !b.enter() {
		return // closing
	}
	defer b.handlers.Done()
	start := time.Now()
	src := remoteAddr(w.RemoteAddr())
	ctx := newQueryCtx(b.ctx, b.cfg.QueryTimeout)
	resp, out, _ := b.answer(ctx, src, r, false)
	ctx.release()
	if resp == nil {
		return
	}
	if err := w.WriteMsg(resp); err != nil {
		b.log.Debug("writing answer", zap.Error(err))
	}
	b.metrics.query(out.qtype, out.result).Inc()
	b.metrics.took(out.source).Observe(time.Since(start).Seconds())
}

func remoteAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case nil:
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// Admit applies the rules a DNS server of socksd's (the bridge, and
// `socksd run`'s resolver) checks before it looks at the name: a QUERY
// (else NOTIMP), exactly one question (RFC 9619; else FORMERR, with no
// question echoed: it may not even pack), EDNS version 0 (RFC 6891
// §6.1.3; else BADVERS), class IN (else REFUSED: CHAOS "version.bind"
// and the like have no data here). It returns the question, or the
// reply to send instead and its result label. Whether r is itself a
// response (never answered) is the caller's first check.
func Admit(r *dns.Msg) (q dns.Question, m *dns.Msg, result string) {
	if r.Opcode != dns.OpcodeQuery {
		return q, reply(r, dns.RcodeNotImplemented), "notimp"
	}
	if len(r.Question) != 1 {
		m := reply(r, dns.RcodeFormatError)
		m.Question = nil
		return q, m, "formerr"
	}
	q = r.Question[0]
	if opt := r.IsEdns0(); opt != nil && opt.Version() != 0 {
		return q, reply(r, dns.RcodeBadVers), "badvers"
	}
	if q.Qclass != dns.ClassINET {
		return q, reply(r, dns.RcodeRefused), "refused"
	}
	return q, nil, ""
}

// Reply starts an answer to r with rcode (recursion available, EDNS
// when r had it).
func Reply(r *dns.Msg, rcode int) *dns.Msg { return reply(r, rcode) }

// reply starts an answer to r with rcode.
func reply(r *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	m.RecursionAvailable = true
	if r.IsEdns0() != nil {
		m.SetEdns0(ednsSize, false)
	}
	return m
}

// answer decides the response to r from a client at src; nil means send
// nothing. inline: the caller is a UDP worker that must not block — when
// the answer needs Tor or the disk, answer returns wait true before
// changing anything, and the query is asked again with inline false.
func (b *Bridge) answer(ctx context.Context, src netip.Addr, r *dns.Msg, inline bool) (m *dns.Msg, out outcome, wait bool) {
	m, out = b.decide(ctx, src, r, inline)
	return m, out, m == nil && out.result == resultWait
}

// resultWait marks the outcome of an inline answer that would block.
const resultWait = "wait"

func (b *Bridge) decide(ctx context.Context, src netip.Addr, r *dns.Msg, inline bool) (*dns.Msg, outcome) {
	out := outcome{qtype: "none", source: "local"}
	if r.Response {
		return nil, out // never answer an answer: no loops, no reflection
	}
	if !b.cfg.allowed(src) {
		out.result = "refused"
		m := reply(r, dns.RcodeRefused)
		m.Question = nil // tell a stranger nothing, not even its own question
		return m, out
	}
	q, m, result := Admit(r)
	if result != "notimp" && len(r.Question) == 1 {
		out.qtype = qtypeLabel(q.Qtype)
	}
	if m != nil {
		out.result = result
		return m, out
	}
	switch q.Qtype {
	case dns.TypeA, dns.TypeANY: // ANY: the one answer we can give, like Tor's dnsserv
		return b.answerAddr(ctx, r, q, false, inline, out)
	case dns.TypeAAAA:
		return b.answerAddr(ctx, r, q, true, inline, out)
	case dns.TypePTR:
		return b.answerPTR(ctx, r, q, inline, out)
	}
	// MX, TXT, SRV, HTTPS...: we could only make them up or forward them.
	out.result = "notimp"
	return reply(r, dns.RcodeNotImplemented), out
}

func qtypeLabel(t uint16) string {
	switch t {
	case dns.TypeA:
		return "A"
	case dns.TypeAAAA:
		return "AAAA"
	case dns.TypePTR:
		return "PTR"
	case dns.TypeANY:
		return "ANY"
	}
	return "other"
}

func (b *Bridge) hdr(q dns.Question, rrtype uint16) dns.RR_Header {
	// The owner name is the question's, byte for byte: clients using DNS
	// 0x20 case randomisation compare it.
	return dns.RR_Header{Name: q.Name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: uint32(b.cfg.TTL / time.Second)}
}

func (b *Bridge) addrRR(q dns.Question, a netip.Addr) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: b.hdr(q, dns.TypeA), A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: b.hdr(q, dns.TypeAAAA), AAAA: a.AsSlice()}
}

// formErr answers a query whose name we reject. The question is not echoed:
// it may not even pack (a 64-byte label, a 256-byte name).
func formErr(r *dns.Msg, out outcome) (*dns.Msg, outcome) {
	out.result = "formerr"
	m := reply(r, dns.RcodeFormatError)
	m.Question = nil
	return m, out
}

// fail turns an error into SERVFAIL or, for "Tor says no such name",
// NXDOMAIN.
func (b *Bridge) fail(r *dns.Msg, err error, out outcome) (*dns.Msg, outcome) {
	if noAnswer(err) {
		out.result = "nxdomain"
		return reply(r, dns.RcodeNameError), out
	}
	b.log.Debug("query failed", zap.String("qtype", out.qtype), zap.Error(err))
	out.result = "servfail"
	return reply(r, dns.RcodeServerFailure), out
}

func noAnswer(err error) bool {
	if errors.Is(err, ErrNoAnswer) {
		return true
	}
	var re *socks5.ReplyError
	return errors.As(err, &re) && re.Code == socks5.ReplyHostUnreachable
}

// answerAddr answers A (want6 false) or AAAA.
func (b *Bridge) answerAddr(ctx context.Context, r *dns.Msg, q dns.Question, want6, inline bool, out outcome) (*dns.Msg, outcome) {
	name, err := normalizeName(q.Name)
	if err != nil {
		return formErr(r, out)
	}
	if nxdomainName(name) {
		out.result = "nxdomain"
		return reply(r, dns.RcodeNameError), out
	}
	if b.cfg.automapped(name) {
		f := b.v4
		if want6 {
			f = b.v6
		}
		if f == nil { // family disabled: the name exists, this type does not
			out.result = "nodata"
			return reply(r, dns.RcodeSuccess), out
		}
		var (
			addr    netip.Addr
			created bool
			err     error
			ok      bool
		)
		if addr, ok = b.cachedAddr(f, name); !ok {
			if inline {
				out.result = resultWait
				return nil, out
			}
			addr, created, err = b.mapName(ctx, f, name)
		}
		if err != nil {
			return b.fail(r, err, out)
		}
		out.source = "cache"
		if created {
			out.source = "new"
		}
		b.metrics.answer(out.source).Inc()
		m := reply(r, dns.RcodeSuccess)
		m.Answer = []dns.RR{b.addrRR(q, addr)}
		out.result = "noerror"
		return m, out
	}
	if inline {
		out.result = resultWait
		return nil, out
	}
	ans, err := b.torResolve(ctx, name, false)
	if err != nil {
		return b.fail(r, err, out)
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(ans, "["), "]"))
	if err != nil {
		return b.fail(r, err, out)
	}
	a = a.Unmap()
	out.source = "tor"
	if a.Is6() != want6 {
		out.result = "nodata"
		return reply(r, dns.RcodeSuccess), out
	}
	b.metrics.answer(out.source).Inc()
	m := reply(r, dns.RcodeSuccess)
	m.Answer = []dns.RR{b.addrRR(q, a)}
	out.result = "noerror"
	return m, out
}

// answerPTR answers a reverse query: our own virtual addresses from the
// table, public addresses through Tor, everything else NXDOMAIN.
func (b *Bridge) answerPTR(ctx context.Context, r *dns.Msg, q dns.Question, inline bool, out outcome) (*dns.Msg, outcome) {
	qname, err := normalizeName(q.Name)
	if err != nil {
		return formErr(r, out)
	}
	addr, ok := parseReverse(qname)
	if !ok {
		out.result = "nxdomain"
		return reply(r, dns.RcodeNameError), out
	}
	var name string
	if f := b.familyOf(addr); f != nil {
		b.mu.Lock()
		m := f.byAddr[addr.Unmap()]
		if m != nil {
			now := b.now()
			m.lastAnswer = now
			f.touch(m, now)
			b.used = true
			name = m.name
		}
		b.mu.Unlock()
		if m == nil {
			out.result = "nxdomain"
			return reply(r, dns.RcodeNameError), out
		}
		out.source = "cache"
	} else {
		if !publicAddr(addr) {
			out.result = "nxdomain"
			return reply(r, dns.RcodeNameError), out
		}
		if inline {
			out.result = resultWait
			return nil, out
		}
		ans, err := b.torResolve(ctx, addr.Unmap().String(), true)
		if err != nil {
			return b.fail(r, err, out)
		}
		if name, err = normalizeName(ans); err != nil {
			return b.fail(r, err, out)
		}
		out.source = "tor"
	}
	b.metrics.answer(out.source).Inc()
	m := reply(r, dns.RcodeSuccess)
	m.Answer = []dns.RR{&dns.PTR{Hdr: b.hdr(q, dns.TypePTR), Ptr: dns.Fqdn(name)}}
	out.result = "noerror"
	return m, out
}

// torResolve asks Tor, within the in-flight limit.
func (b *Bridge) torResolve(ctx context.Context, name string, reverse bool) (string, error) {
	release, err := b.acquire()
	if err != nil {
		return "", err
	}
	defer release()
	ans, err := b.tor.Resolve(ctx, name, reverse)
	b.metrics.torCalls.WithLabelValues("resolve", result(err)).Inc()
	return ans, err
}

// acquire takes a slot of the in-flight limit without waiting: a query that
// finds every slot taken by a slow Tor gets SERVFAIL at once, and the
// client retries, instead of piling up goroutines.
func (b *Bridge) acquire() (func(), error) {
	select {
	case b.inflight <- struct{}{}:
		return func() { <-b.inflight }, nil
	default:
		return nil, errBusy
	}
}
