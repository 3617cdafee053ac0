package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// runner is a parallel job: run is called once per participating goroutine
// and pulls work items itself (usually from an atomic counter), so a job
// never depends on how many helpers actually joined.
type runner interface{ run() }

type poolItem struct {
	r  runner
	wg *sync.WaitGroup
}

var (
	poolCh   = make(chan poolItem)
	poolMu   sync.Mutex
	poolSize atomic.Int32 // helper goroutines alive (they live for the process)
	poolBusy atomic.Int32 // items handed off and not yet finished
	wgPool   = sync.Pool{New: func() any { return new(sync.WaitGroup) }}
)

func poolWorker() {
	for it := range poolCh {
		it.r.run()
		// Free before Done: a caller that returns from Wait and starts the
		// next job (e.g. GEMM after packing) must see this helper as free,
		// or it would run that job alone.
		poolBusy.Add(-1)
		it.wg.Done()
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
// returns when all have finished. A helper is recruited only while fewer
// items are outstanding than helpers exist, so every hand-off is received
// by a free helper; nested or concurrent calls that find the pool busy
// simply run on the caller alone instead of deadlocking.
func parallel(n int, r runner) {
	if n <= 1 {
		r.run()
		return
	}
	ensureWorkers(n - 1)
	wg := wgPool.Get().(*sync.WaitGroup)
	for i := 1; i < n; i++ {
		if poolBusy.Add(1) > poolSize.Load() {
			poolBusy.Add(-1)
			break
		}
		wg.Add(1)
		poolCh <- poolItem{r, wg}
	}
	r.run()
	wg.Wait()
	wgPool.Put(wg)
}
