package resolve

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// queryCtx is a query's deadline context, made lazily: most answers come
// from the table and never block, and a timer per query is a measurable
// share of the cached path (BenchmarkHandlerCached). The timer-backed
// context is built the first time something waits on Done.
//
// After release the context behaves as cancelled, whoever still holds it
// (a MAPADDRESS shared by concurrent queries may outlive the query that
// started it): Done is closed and Err is non-nil, as the context contract
// requires of a closed Done.
type queryCtx struct {
	context.Context // the bridge's: cancelled by Close
	deadline        time.Time
	released        atomic.Bool

	once   sync.Once
	inner  context.Context
	cancel context.CancelFunc
}

// canceledCtx stands in for the timer context of a query released before
// anything waited on it.
var canceledCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func newQueryCtx(parent context.Context, timeout time.Duration) *queryCtx {
	return &queryCtx{Context: parent, deadline: time.Now().Add(timeout)}
}

func (q *queryCtx) materialize() context.Context {
	q.once.Do(func() {
		if q.released.Load() {
			q.inner, q.cancel = canceledCtx, func() {}
			return
		}
		q.inner, q.cancel = context.WithDeadline(q.Context, q.deadline)
	})
	return q.inner
}

func (q *queryCtx) Deadline() (time.Time, bool) { return q.deadline, true }

func (q *queryCtx) Done() <-chan struct{} { return q.materialize().Done() }

func (q *queryCtx) Err() error {
	if err := q.Context.Err(); err != nil {
		return err
	}
	if q.released.Load() {
		return context.Canceled
	}
	if !time.Now().Before(q.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// release stops the timer if one was made and cancels the context.
func (q *queryCtx) release() {
	q.released.Store(true)
	q.materialize()
	q.cancel()
}
