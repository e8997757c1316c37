package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"socksd/test/tornet"
)

// userWorkload is the measured part of socksbench user. Every loop is
// bounded by the settings' counts and every request by a timeout.
type userWorkload struct {
	ctx   context.Context
	s     userSettings
	res   *userResults
	dest  string // the test HTTP server, "127.0.0.1:P"
	onion string // "<onion>:80"
	rng   *rand.Rand
	logf  func(string, ...any)
}

const (
	userTimeout = 60 * time.Second  // one small GET, circuit build included
	bulkTimeout = 180 * time.Second // one bulk GET
)

// turns calls fn(t, i) for i in [0, n) and every target, the targets taking
// turns at each i in a fresh random order.
func (w *userWorkload) turns(targets []*userTarget, n int, fn func(t *userTarget, i int)) {
	for i := range n {
		if w.ctx.Err() != nil {
			return
		}
		for _, k := range w.rng.Perm(len(targets)) {
			fn(targets[k], i)
		}
	}
}

func ms(d time.Duration) float64 { return d.Seconds() * 1e3 }

// fail records a failed request, unless the workload was ended (budget,
// signal) while it ran.
func (w *userWorkload) fail(measure, target string, err error) {
	if w.ctx.Err() == nil {
		w.res.fail(measure, target, err)
	}
}

func (w *userWorkload) run(targets []*userTarget) {
	s := w.s
	t0 := time.Now()
	// Sequential new identities: the first stream builds or takes a
	// circuit; the later ones ride on it.
	w.turns(targets, s.IDs, func(t *userTarget, i int) {
		id := fmt.Sprintf("seq-%s-%d", t.name, i)
		if d, _, err := userGet(w.ctx, t.proxy, w.dest, id, "/", userTimeout); err != nil {
			w.fail(mNewSeq, t.name, err)
			return
		} else {
			w.res.add(mNewSeq, t.name, ms(d))
		}
		for range s.Later {
			if d, _, err := userGet(w.ctx, t.proxy, w.dest, id, "/", userTimeout); err != nil {
				w.fail(mKnown, t.name, err)
			} else {
				w.res.add(mKnown, t.name, ms(d))
			}
		}
	})
	w.logf("sequential identities done (+%s)", time.Since(t0).Round(time.Second))

	// Bursts: BurstN new identities started evenly over BurstSpan, all in
	// flight together, as a browser opening a page with many sites.
	w.turns(targets, s.Bursts, func(t *userTarget, i int) {
		var wg sync.WaitGroup
		for j := range s.BurstN {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("burst-%s-%d-%d", t.name, i, j)
				if d, _, err := userGet(w.ctx, t.proxy, w.dest, id, "/", userTimeout); err != nil {
					w.fail(mNewBurst, t.name, err)
				} else {
					w.res.add(mNewBurst, t.name, ms(d))
				}
			}()
			if j < s.BurstN-1 {
				time.Sleep(s.BurstSpan / time.Duration(s.BurstN)) // pacing the burst
			}
		}
		wg.Wait()
	})
	w.logf("bursts done (+%s)", time.Since(t0).Round(time.Second))

	// Bulk on one identity whose circuit is already there (a first small
	// GET builds or picks it): one stream, then Parallel streams at once.
	w.turns(targets, s.BulkRounds, func(t *userTarget, i int) {
		id := fmt.Sprintf("bulk-%s-%d", t.name, i)
		if _, _, err := userGet(w.ctx, t.proxy, w.dest, id, "/", userTimeout); err != nil {
			w.fail(mBulk1, t.name, err)
			return
		}
		start := time.Now()
		_, got, err := userGet(w.ctx, t.proxy, w.dest, id, fmt.Sprintf("/bytes?n=%d", s.BulkBytes), bulkTimeout)
		if err == nil && got != int64(s.BulkBytes) {
			err = fmt.Errorf("got %d of %d bytes", got, s.BulkBytes)
		}
		if err != nil {
			w.fail(mBulk1, t.name, err)
		} else {
			w.res.add(mBulk1, t.name, float64(got)/time.Since(start).Seconds()/1e6)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var total int64
		var perr error
		start = time.Now()
		for range s.Parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, got, err := userGet(w.ctx, t.proxy, w.dest, id, fmt.Sprintf("/bytes?n=%d", s.ParallelBytes), bulkTimeout)
				if err == nil && got != int64(s.ParallelBytes) {
					err = fmt.Errorf("got %d of %d bytes", got, s.ParallelBytes)
				}
				mu.Lock()
				total += got
				if err != nil {
					perr = err
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		if perr != nil {
			w.fail(mBulkPar, t.name, perr)
		} else {
			w.res.add(mBulkPar, t.name, float64(total)/time.Since(start).Seconds()/1e6)
		}
	})
	w.logf("bulk done (+%s)", time.Since(t0).Round(time.Second))

	// Onion: a new identity's first stream needs its own rendezvous
	// circuit (Tor isolates those too); later streams reuse it.
	w.turns(targets, s.OnionIDs, func(t *userTarget, i int) {
		id := fmt.Sprintf("onion-%s-%d", t.name, i)
		if d, _, err := userGet(w.ctx, t.proxy, w.onion, id, "/", 2*userTimeout); err != nil {
			w.fail(mOnionFirst, t.name, err)
			return
		} else {
			w.res.add(mOnionFirst, t.name, ms(d))
		}
		for range s.Later {
			if d, _, err := userGet(w.ctx, t.proxy, w.onion, id, "/", userTimeout); err != nil {
				w.fail(mOnionLater, t.name, err)
			} else {
				w.res.add(mOnionLater, t.name, ms(d))
			}
		}
	})
	w.logf("onion done (+%s)", time.Since(t0).Round(time.Second))

	// Isolation: IsoStreams streams from IsoIDs identities, IsoWorkers at
	// a time, each identity k to its own name iso<k>.example.test (the
	// exits resolve the whole zone to the HTTP server), so Tor's own
	// STREAM events say which identity each stream belongs to; the check
	// reads nothing else.
	if s.IsoStreams == 0 {
		return
	}
	_, port, _ := strings.Cut(w.dest, ":")
	for _, k := range w.rng.Perm(len(targets)) {
		t := targets[k]
		jobs := make(chan int)
		var wg sync.WaitGroup
		for range s.IsoWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range jobs {
					host := fmt.Sprintf("%s%d.%s:%s", isoPrefix, id, tornet.ZoneName, port)
					if _, _, err := userGet(w.ctx, t.proxy, host, fmt.Sprintf("iso-%s-%d", t.name, id), "/", userTimeout); err != nil {
						w.fail(mIsolation, t.name, err)
					} else {
						w.res.add(mIsolation, t.name, 1)
					}
				}
			}()
		}
		for i := 0; i < s.IsoStreams && w.ctx.Err() == nil; i++ {
			jobs <- w.rng.IntN(s.IsoIDs)
		}
		close(jobs)
		wg.Wait()
	}
	w.logf("isolation streams done (+%s)", time.Since(t0).Round(time.Second))
}
