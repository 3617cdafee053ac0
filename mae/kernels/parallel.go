package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// runner is a parallel job: run is called once per participating goroutine
// and pulls work items itself (usually from an atomic counter), so a job
// never depends on how many helpers actually joined, and an item is done
// by whichever goroutine is running when it comes up.
type runner interface{ run() }

// team is the join state of one parallel call. The caller does not wait
// for the helpers it invited, only for those that actually joined: a
// helper that the OS has not scheduled yet when the work runs out (on a
// busy machine, a thread can wait milliseconds for a core) finds the team
// closed and leaves without touching the job. The caller therefore waits
// only for items in progress, never for a helper to start.
type team struct {
	r       runner
	id      atomic.Uint64 // the call it serves; 0 once closed
	joined  atomic.Int32  // helpers inside r.run (or about to check id)
	waiting atomic.Bool   // the caller is blocked on wake
	wake    chan struct{} // cap 1: the last helper out wakes the caller
}

// invite is a request to join team t's call id.
type invite struct {
	t  *team
	id uint64
}

var (
	// poolCh is buffered and sent to without blocking: an invite that no
	// helper takes in time is simply stale when one does.
	poolCh   = make(chan invite, 64)
	poolMu   sync.Mutex
	poolSize atomic.Int32  // helper goroutines alive (they live for the process)
	callID   atomic.Uint64 // source of team ids
	teamPool = sync.Pool{New: func() any { return &team{wake: make(chan struct{}, 1)} }}
)

func poolWorker() {
	for inv := range poolCh {
		t := inv.t
		t.joined.Add(1) // before checking id: the caller closes, then counts
		if t.id.Load() == inv.id {
			t.r.run()
		}
		if t.joined.Add(-1) == 0 && t.waiting.Load() {
			select {
			case t.wake <- struct{}{}:
			default: // a token is already there
			}
		}
	}
}

func ensureWorkers(n int) {
	if int(poolSize.Load()) >= n {
		return
	}
	poolMu.Lock()
	for int(poolSize.Load()) < n {
		poolSize.Add(1)
		go poolWorker()
	}
	poolMu.Unlock()
}

// Threads is how many goroutines a kernel call may use: All (every core,
// what the package-level functions do) or One (the calling goroutine
// only, for callers that split work across cores themselves, such as one
// image per core; see Parallel).
type Threads int

const (
	All Threads = iota
	One
)

// workers is how many goroutines a job of the given cost (in flops or a
// comparable unit) should use: small jobs run inline.
func (t Threads) workers(cost float64) int {
	n := runtime.GOMAXPROCS(0)
	if cost < 3e5 || n < 2 || t == One {
		return 1
	}
	return n
}

// parallel runs r.run on the caller and on up to n-1 pool helpers and
// returns when every item is done. Invites never block: when the helpers
// are busy (concurrent or nested calls) the caller runs the job alone, and
// helpers that start late leave without running (see team).
func parallel(n int, r runner) {
	if n <= 1 {
		r.run()
		return
	}
	ensureWorkers(n - 1)
	t := teamPool.Get().(*team)
	t.r = r
	id := callID.Add(1)
	t.id.Store(id) // publishes t.r and the job's fields to helpers
	for i := 1; i < n; i++ {
		select {
		case poolCh <- invite{t, id}:
		default:
		}
	}
	r.run()
	t.id.Store(0)
	for t.joined.Load() != 0 {
		// A helper is still finishing an item. Block rather than spin: on
		// a loaded machine spinning could take the core it needs.
		t.waiting.Store(true)
		if t.joined.Load() != 0 {
			<-t.wake // possibly a stale token: the loop checks again
		}
		t.waiting.Store(false)
	}
	t.r = nil
	teamPool.Put(t)
}

// Work is a set of independent items for Parallel.
type Work interface {
	// Do runs items [i0, i1). slot is distinct among the goroutines
	// running items at the same time (0 ≤ slot < Parallel's slots), so
	// that each can use its own scratch.
	Do(slot, i0, i1 int)
}

// itemsJob hands out a Work's items in chunks (see Parallel).
type itemsJob struct {
	w               Work
	n, chunk, slots int
	next            atomic.Int64
	joined          atomic.Int32
}

func (j *itemsJob) run() {
	slot := int(j.joined.Add(1)) - 1
	for {
		i := int(j.next.Load())
		if i >= j.n {
			return
		}
		size := min(j.chunk, ceilDiv(j.n-i, j.slots))
		if j.next.CompareAndSwap(int64(i), int64(i+size)) {
			j.w.Do(slot, i, i+size)
		}
	}
}

var itemsPool = sync.Pool{New: func() any { return new(itemsJob) }}

// Parallel runs w.Do over items 0..n-1 on the caller and the pool's
// helpers (at most slots goroutines, GOMAXPROCS or n if fewer) and returns
// when all are done. It is for coarse work, such as whole forward passes
// of images with the kernels inside on One thread: no join per operation.
// Items are handed out in chunks of at most chunk, shrinking towards the
// end (remaining/slots, "guided"), so that whoever runs takes the next
// chunk: a helper that the OS does not schedule in time does fewer (or
// none; the caller waits only for chunks in progress, as for every kernel
// call), and the last chunks are small.
func Parallel(n, chunk, slots int, w Work) {
	if n <= 0 {
		return
	}
	nw := min(n, slots, runtime.GOMAXPROCS(0))
	j := itemsPool.Get().(*itemsJob)
	j.w, j.n, j.chunk, j.slots = w, n, max(1, chunk), max(1, nw)
	j.next.Store(0)
	j.joined.Store(0)
	parallel(nw, j)
	j.w = nil
	itemsPool.Put(j)
}
