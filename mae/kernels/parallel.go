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

// workers is how many goroutines a job of the given cost (in flops or a
// comparable unit) should use: small jobs run inline.
func workers(cost float64) int {
	n := runtime.GOMAXPROCS(0)
	if cost < 3e5 || n < 2 {
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
