package torctl

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"
)

const (
	// MaxLineLength bounds one line from Tor, CRLF excluded. control-spec §2.1
	// says there is no limit, but Tor itself refuses controller lines over
	// 1 MiB; we hold Tor to the same bound and close the connection beyond it.
	MaxLineLength = 1 << 20
	// MaxMessageSize bounds one whole reply or event (all lines and data).
	MaxMessageSize = 64 << 20
)

// Reply is a complete reply to one command (control-spec §2.3). Code is the
// code of the final (EndReplyLine) line; replies MAY mix codes (MAPADDRESS,
// §3.8), so look at Lines for per-line codes.
type Reply struct {
	Code  int
	Lines []ReplyLine
}

// ReplyLine is one MidReplyLine ('-'), DataReplyLine ('+') or EndReplyLine
// (' '). For '+' lines Data holds the CmdData block, dot-unstuffed, with
// lines joined by "\n" and no trailing newline.
type ReplyLine struct {
	Code int
	Sep  byte
	Text string
	Data string
}

// OK reports whether every line of the reply has a 2xx code.
func (r *Reply) OK() bool { return r.err() == nil }

// err returns the first non-2xx line as an *Error, or nil.
func (r *Reply) err() error {
	for _, l := range r.Lines {
		if l.Code < 200 || l.Code > 299 {
			return &Error{Code: l.Code, Text: l.Text}
		}
	}
	return nil
}

// Event is one asynchronous 650 reply (control-spec §4.1). Type is its first
// word ("STREAM", "CIRC", "ADDRMAP", "STATUS_CLIENT", ...); Text is the text of
// its first line; Lines holds every line, including extra 650- lines that
// extended events may add. Received is when the reader had the whole
// event: latencies measured from it include the time the event waited in
// this process (queue, scheduling), not only its handling.
type Event struct {
	Type     string
	Text     string
	Lines    []ReplyLine
	Received time.Time
}

// lineReader reads CRLF (or LF) terminated lines of at most max bytes.
type lineReader struct {
	br  *bufio.Reader
	max int
	buf []byte
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line without its terminator. The returned slice is
// valid until the next call. A final line without terminator is an error
// (io.ErrUnexpectedEOF): Tor always terminates its lines.
func (lr *lineReader) next() ([]byte, error) {
	lr.buf = lr.buf[:0]
	for {
		frag, err := lr.br.ReadSlice('\n')
		if len(lr.buf)+len(frag) > lr.max+2 { // +2: room for CRLF
			return nil, fmt.Errorf("%w (over %d bytes)", ErrLineTooLong, lr.max)
		}
		lr.buf = append(lr.buf, frag...)
		switch err {
		case nil:
			line := lr.buf[:len(lr.buf)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			if len(line) > lr.max {
				return nil, fmt.Errorf("%w (over %d bytes)", ErrLineTooLong, lr.max)
			}
			return line, nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			if len(lr.buf) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, io.EOF
		default:
			return nil, err
		}
	}
}

// assembler turns lines into complete messages (control-spec §2.3). It is
// sans-IO: feed it one line at a time.
//
// Replies and events are assembled separately, chosen by each line's status
// code (6xx: event). §4.1 says Tor never interleaves them, and tor 0.4.9
// does not; should one ever appear inside the other, it is still routed
// where it belongs instead of being swallowed or killing the connection.
type assembler struct {
	reply, event partial
	data         *partial // the message whose CmdData block is open, if any
	dataBuf      strings.Builder
	dataLines    int
}

type partial struct {
	lines []ReplyLine
	size  int
}

// midMessage reports whether a message has started but not ended; EOF then
// means a truncated reply or event.
func (a *assembler) midMessage() bool {
	return len(a.reply.lines) > 0 || len(a.event.lines) > 0
}

// feed consumes one line (terminator stripped). It returns a complete
// message's lines when its EndReplyLine arrives, nil otherwise.
func (a *assembler) feed(line []byte) ([]ReplyLine, error) {
	if p := a.data; p != nil {
		if p.size += len(line) + 2; p.size > MaxMessageSize {
			return nil, ErrReplyTooLarge
		}
		// CmdData (§2.4): "." alone ends it; a leading "." is stuffed.
		if len(line) == 1 && line[0] == '.' {
			p.lines[len(p.lines)-1].Data = a.dataBuf.String()
			a.dataBuf.Reset()
			a.dataLines = 0
			a.data = nil
			return nil, nil
		}
		if a.dataLines > 0 {
			a.dataBuf.WriteByte('\n')
		}
		a.dataLines++
		if len(line) > 0 && line[0] == '.' {
			line = line[1:]
		}
		a.dataBuf.Write(line)
		return nil, nil
	}
	rl, err := parseLine(line)
	if err != nil {
		return nil, err
	}
	p := &a.reply
	if rl.Code >= 600 {
		p = &a.event
	}
	if p.size += len(line) + 2; p.size > MaxMessageSize {
		return nil, ErrReplyTooLarge
	}
	p.lines = append(p.lines, rl)
	switch rl.Sep {
	case '+':
		a.data = p
		return nil, nil
	case '-':
		return nil, nil
	}
	out := p.lines
	*p = partial{}
	return out, nil
}

// parseLine parses StatusCode ("-" / "+" / SP) ReplyText.
func parseLine(line []byte) (ReplyLine, error) {
	if len(line) < 4 {
		return ReplyLine{}, fmt.Errorf("%w: short line %q", ErrProtocol, clip(line))
	}
	c0, c1, c2 := line[0], line[1], line[2]
	if c0 < '1' || c0 > '6' || c1 < '0' || c1 > '9' || c2 < '0' || c2 > '9' {
		return ReplyLine{}, fmt.Errorf("%w: bad status code %q", ErrProtocol, clip(line))
	}
	sep := line[3]
	if sep != ' ' && sep != '-' && sep != '+' {
		return ReplyLine{}, fmt.Errorf("%w: bad separator %q", ErrProtocol, clip(line))
	}
	code := int(c0-'0')*100 + int(c1-'0')*10 + int(c2-'0')
	return ReplyLine{Code: code, Sep: sep, Text: string(line[4:])}, nil
}

func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// encodeLines writes lines back in wire form (used by tests, the fake
// server and the fuzz round trip). Data is dot-stuffed.
func encodeLines(lines []ReplyLine) string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%03d%c%s\r\n", l.Code, l.Sep, l.Text)
		if l.Sep == '+' {
			b.WriteString(dotStuff(l.Data))
		}
	}
	return b.String()
}

// DotStuff encodes data as a CmdData block (control-spec §2.4): lines (split
// on "\n" or "\r\n") joined by CRLF, leading dots doubled, terminated by
// "." CRLF. Useful for "+"
// multi-line commands such as +LOADCONF.
func DotStuff(data string) string {
	return dotStuff(strings.ReplaceAll(data, "\r\n", "\n"))
}

// dotStuff encodes "\n"-separated lines exactly (a lone "\r" is data).
func dotStuff(data string) string {
	var b strings.Builder
	if data != "" {
		for _, l := range strings.Split(data, "\n") {
			if strings.HasPrefix(l, ".") {
				b.WriteByte('.')
			}
			b.WriteString(l)
			b.WriteString("\r\n")
		}
	}
	b.WriteString(".\r\n")
	return b.String()
}
