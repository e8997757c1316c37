package resolve

import (
	"context"
	"sync"
	"time"
)

// queryCtx is a query's deadline context, made lazily: most answers come
// from the table and never block, and a timer per query is a measurable
// share of the cached path (BenchmarkHandlerCached). The timer-backed
// context is built the first time something waits on Done.
type queryCtx struct {
	context.Context // the bridge's: cancelled by Close
	deadline        time.Time

	once   sync.Once
	inner  context.Context
	cancel context.CancelFunc
}

func newQueryCtx(parent context.Context, timeout time.Duration) *queryCtx {
	return &queryCtx{Context: parent, deadline: time.Now().Add(timeout)}
}

func (q *queryCtx) materialize() context.Context {
	q.once.Do(func() { q.inner, q.cancel = context.WithDeadline(q.Context, q.deadline) })
	return q.inner
}

func (q *queryCtx) Deadline() (time.Time, bool) { return q.deadline, true }

func (q *queryCtx) Done() <-chan struct{} { return q.materialize().Done() }

func (q *queryCtx) Err() error {
	if err := q.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(q.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// release stops the timer if one was made.
func (q *queryCtx) release() {
	q.once.Do(func() {}) // no timer from now on
	if q.cancel != nil {
		q.cancel()
	}
}
