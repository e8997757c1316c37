// Package confcheck collects configuration problems. Each package that owns
// a section of socksd's configuration file validates it with a Problems
// value, naming keys relative to its section ("launch", "listen[0]"); the
// config package prefixes the section ("tor.launch") and reports every
// problem of every section at once, so a user fixes a file in one pass.
package confcheck

import (
	"errors"
	"fmt"
	"time"

	"socksd/internal/endpoint"
)

// Problem is one invalid value: its key and what is wrong with it.
type Problem struct {
	Key string // relative to the section, as the file spells it
	Msg string
}

func (p *Problem) Error() string { return p.Key + ": " + p.Msg }

// Problems collects the problems of one section. The zero value is ready.
type Problems struct{ list []*Problem }

// Add records a problem with key.
func (p *Problems) Add(key, format string, args ...any) {
	p.list = append(p.list, &Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Positive requires a duration > 0.
func (p *Problems) Positive(key string, d time.Duration) {
	if d <= 0 {
		p.Add(key, "must be a duration > 0 like \"30s\", got %v", d)
	}
}

// Enum requires one of allowed.
func (p *Problems) Enum(key, val string, allowed []string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	p.Add(key, "must be one of %q, got %q", allowed, val)
}

// Endpoint requires a socket address in socksd's notation (package
// endpoint).
func (p *Problems) Endpoint(key, addr string) {
	if err := endpoint.Check(addr); err != nil {
		p.Add(key, "%v", err)
	}
}

// Err is every problem joined, or nil. Each joined error is a *Problem.
func (p *Problems) Err() error {
	errs := make([]error, len(p.list))
	for i, e := range p.list {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// Each calls fn for every Problem in err, in order: err is what a
// section's Validate returned (a Problems.Err, possibly joined with
// others). An error that is not a Problem is passed with an empty key.
func Each(err error, fn func(key, msg string)) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			Each(e, fn)
		}
		return
	}
	var p *Problem
	if errors.As(err, &p) {
		fn(p.Key, p.Msg)
		return
	}
	fn("", err.Error())
}
