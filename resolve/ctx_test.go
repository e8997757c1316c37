package resolve

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A query context used after its query ended (a shared MAPADDRESS can
// outlive the query that started it) must look cancelled: Done closed and
// Err non-nil, whether or not anything waited on it before.
func TestQueryCtxAfterRelease(t *testing.T) {
	for _, waitedBefore := range []bool{false, true} {
		q := newQueryCtx(context.Background(), time.Hour)
		if waitedBefore {
			_ = q.Done()
		}
		if err := q.Err(); err != nil {
			t.Fatalf("waitedBefore=%v: Err before release = %v", waitedBefore, err)
		}
		q.release()
		select {
		case <-q.Done():
		default:
			t.Fatalf("waitedBefore=%v: Done not closed after release", waitedBefore)
		}
		if err := q.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("waitedBefore=%v: Err after release = %v, want context.Canceled", waitedBefore, err)
		}
	}
}

func TestQueryCtxDeadline(t *testing.T) {
	q := newQueryCtx(context.Background(), time.Millisecond)
	defer q.release()
	<-q.Done()
	if err := q.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", err)
	}
}
