package sinks

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ErrAborted is what a writer's Abort passes to the acks of rows it had not
// published yet.
var ErrAborted = errors.New("sinks: writer aborted before the row was published")

// pending holds, in write order, the acks of rows written but not yet
// durable. Rows with a nil Ack are not tracked.
type pending []func(error)

func (p *pending) hold(ack func(error)) {
	if ack != nil {
		*p = append(*p, ack)
	}
}

// settle calls every held ack with err (nil: the rows are durable) and
// forgets them.
func (p *pending) settle(err error) {
	for i, ack := range *p {
		ack(err)
		(*p)[i] = nil
	}
	*p = (*p)[:0]
}

// failRows acks every row of a Write that was refused before any of it was
// taken (bad shape, write after close): those rows will never be durable.
func failRows[R any](rows []R, ack func(*R) func(error), err error) error {
	for i := range rows {
		if a := ack(&rows[i]); a != nil {
			a(err)
		}
	}
	return err
}

// JoinAck returns an ack to give each of n outputs of one row (a tee): ack
// is called once, when all n have called theirs, with the first error if
// any failed. For n == 1 it returns ack itself.
func JoinAck(n int, ack func(error)) func(error) {
	if n <= 1 || ack == nil {
		return ack
	}
	var left atomic.Int32
	left.Store(int32(n))
	var mu sync.Mutex
	var first error
	return func(err error) {
		if err != nil {
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
		}
		if left.Add(-1) == 0 {
			mu.Lock()
			defer mu.Unlock()
			ack(first)
		}
	}
}
