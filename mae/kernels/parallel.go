package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"
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
		joinTimed(inv)
		// The next call usually comes within microseconds (batch 1: one
		// per layer). Waking from sleep takes tens of microseconds, so
		// poll for it a little while the machine has a core to spare.
		for {
			next, ok := pollInvite()
			if !ok {
				break
			}
			joinTimed(next)
		}
	}
}

// joinTimed joins a pool call and counts the time in JoinStats' Busy.
func joinTimed(inv invite) {
	start := time.Now()
	inv.t.join(inv.id)
	joinStats.helperBusy.Add(int64(time.Since(start)))
}

// Polling bounds (see spareCPU): a helper waits this long for the next
// invite before it sleeps, and the caller of a parallel call as long for
// the helpers still inside it. At batch 1 the calls come back to back,
// and with the tasks narrowing towards the end (gemmJob.guide) the last
// helper finishes within a small task of the caller.
const (
	helperPoll = 200 * time.Microsecond
	callerPoll = 200 * time.Microsecond
)

// pollInvite waits up to helperPoll for an invite while spareCPU says
// polling takes no core another thread needs. It yields on every round,
// so other goroutines of the process run first.
func pollInvite() (invite, bool) {
	if !spareCPU() {
		return invite{}, false
	}
	start := time.Now()
	for {
		select {
		case inv := <-poolCh:
			return inv, true
		default:
		}
		if time.Since(start) > helperPoll {
			return invite{}, false
		}
		runtime.Gosched()
	}
}

// spare caches sampleSpare for spareSample.
var spare struct {
	next atomic.Int64 // when to sample again (time since spareEpoch)
	ok   atomic.Bool
}

var spareEpoch = time.Now()

const spareSample = 4 * time.Millisecond

// spareCPU tells whether waiting threads may poll: whether, at the last
// sample (at most spareSample old), the machine had no more runnable
// threads than CPUs. Polling then only uses cycles nobody else wants;
// when other processes compete for the cores (the machine is
// oversubscribed), a polling thread would take the core the other
// worker, or another process, needs: waiters sleep at once, as they
// always did before. (Polling unconditionally for 100 µs gained 1–5% at
// batch 1 on a quiet machine but cost 2–50% beside a busy loop.)
func spareCPU() bool {
	now := int64(time.Since(spareEpoch))
	if next := spare.next.Load(); now < next || !spare.next.CompareAndSwap(next, now+int64(spareSample)) {
		return spare.ok.Load()
	}
	ok := sampleSpare()
	spare.ok.Store(ok)
	return ok
}

// runningField parses the running-threads count R of /proc/loadavg
// ("0.45 0.61 0.87 R/T last-pid"); false for anything else, including a
// count of more than 9 digits (which would overflow, and could wrap to a
// small number that lets waiters poll).
func runningField(b []byte) (int, bool) {
	f := 0
	for i := 0; i < len(b); i++ {
		if b[i] == ' ' {
			f++
			continue
		}
		if f == 3 {
			n, digits := 0, 0
			for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
				n = n*10 + int(b[i]-'0')
				digits++
			}
			return n, digits > 0 && digits <= 9 && i < len(b) && b[i] == '/'
		}
	}
	return 0, false
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

// Threads is which goroutines a kernel call may use: All (every core,
// what the package-level functions do; the zero value) or, given to an
// item of Parallel and valid during it, the item's own goroutine plus
// whichever goroutines of the same Parallel call have run out of items.
type Threads struct {
	crew *itemsJob // set for an item of Parallel
	slot int       // the item's goroutine in crew
}

// All runs kernel calls on every core (GOMAXPROCS).
var All = Threads{}

// workers is how many goroutines a job of the given cost (in flops or a
// comparable unit) should use: small jobs run inline. An item of Parallel
// counts only the goroutines of its call that are idle now, usually none,
// so its kernels keep the blocking of one thread.
func (t Threads) workers(cost float64) int {
	n := runtime.GOMAXPROCS(0)
	switch {
	case cost < 3e5 || n < 2:
		return 1
	case t.crew != nil:
		return min(n, 1+int(t.crew.idle.Load()))
	}
	return n
}

// run runs job r on up to n goroutines (from workers): pool helpers, or
// for an item of Parallel, whichever goroutines of its call go idle while
// it runs (so every call is posted, whatever n).
func (t Threads) run(n int, r runner) {
	if t.crew != nil {
		t.crew.parallel(t.slot, r)
		return
	}
	parallel(n, r)
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
	t, id := newTeam(r)
	start := time.Now()
	for i := 1; i < n; i++ {
		select {
		case poolCh <- invite{t, id}:
		default:
		}
	}
	r.run()
	ran := time.Since(start)
	t.close()
	wall := time.Since(start)
	joinStats.calls.Add(1)
	joinStats.offered.Add(int64(n) * int64(wall))
	joinStats.busy.Add(int64(ran))
}

// joinStats accumulates JoinStats over the pool's parallel calls. The helpers' share of busy is on its own cache line:
// the caller and a helper on another core add to them at every call.
var joinStats struct {
	calls, offered, busy atomic.Int64
	_                    cpu.CacheLinePad
	helperBusy           atomic.Int64
}

// JoinStat is what the cores did during the pool's parallel calls (every
// kernel call split over all cores, as at batch 1) since the process
// started: Offered is each call's wall time (from opening it to its join)
// times the workers it asked for; Busy is the time they spent inside the
// call's job. Offered − Busy is the core time lost at the calls' starts
// and joins: a helper waking or scheduled late, and workers out of tasks
// waiting for the last one. (A Parallel call is one such call: its items'
// goroutines count as busy while they wait for each other's kernel calls.)
type JoinStat struct {
	Calls         int64
	Offered, Busy time.Duration
}

// JoinStats returns the counters of JoinStat (subtract two readings to
// measure a stretch of work).
func JoinStats() JoinStat {
	return JoinStat{joinStats.calls.Load(), time.Duration(joinStats.offered.Load()),
		time.Duration(joinStats.busy.Load() + joinStats.helperBusy.Load())}
}

// newTeam returns a team open for job r under a fresh id.
func newTeam(r runner) (*team, uint64) {
	t := teamPool.Get().(*team)
	t.r = r
	id := callID.Add(1)
	t.id.Store(id) // publishes t.r and the job's fields to helpers
	return t, id
}

// join runs t's job if t still serves call id (a helper's side).
func (t *team) join(id uint64) {
	t.joined.Add(1) // before checking id: the caller closes, then counts
	if t.id.Load() == id {
		t.r.run()
	}
	if t.joined.Add(-1) == 0 && t.waiting.Load() {
		select {
		case t.wake <- struct{}{}:
		default: // a token is already there
		}
	}
}

// close ends the call (the caller's side, after its own r.run): it waits
// for the helpers inside the job and returns t to the pool.
func (t *team) close() {
	t.id.Store(0)
	if t.joined.Load() != 0 && spareCPU() {
		// A helper is finishing its last task: poll briefly rather than
		// sleep and be woken (see spareCPU).
		start := time.Now()
		for t.joined.Load() != 0 && time.Since(start) < callerPoll {
			runtime.Gosched()
		}
	}
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

// rowPhase is the first phase of a parallel call, done by rows (the
// LayerNorm before a Linear, Strassen–Winograd's sums): every worker
// takes chunks of rows until none is left, then waits for the chunks
// others are finishing before it goes on to the call's tasks. Unlike a
// parallel call of its own, it needs no join: a worker that arrives late
// finds it done and goes straight to the tasks.
type rowPhase struct {
	w           rowWork
	rows, chunk int
	next, done  atomic.Int64
	// waiters counts workers blocked on wake (see run).
	waiters atomic.Int32
	wake    chan struct{}
}

// rowWork is the work of a rowPhase.
type rowWork interface{ doRows(r0, r1 int) }

func (p *rowPhase) reset(w rowWork, rows, chunk int) {
	p.w, p.rows, p.chunk = w, rows, chunk
	p.next.Store(0)
	p.done.Store(0)
	if p.wake == nil {
		p.wake = make(chan struct{}, 1) // once per pooled job
	}
}

// run does chunks until none is left and returns when all are done.
func (p *rowPhase) run() {
	total := int64(ceilDiv(p.rows, p.chunk))
	for {
		r0 := int(p.next.Add(int64(p.chunk))) - p.chunk
		if r0 >= p.rows {
			break
		}
		p.w.doRows(r0, min(r0+p.chunk, p.rows))
		if p.done.Add(1) == total && p.waiters.Load() > 0 {
			select {
			case p.wake <- struct{}{}:
			default: // a token is already there
			}
		}
	}
	// The chunks left were taken before this worker ran out: they take
	// microseconds, unless their worker was descheduled. Yield while
	// polling is free (spareCPU), then block until the last one is done:
	// not time.Sleep, whose wake-up comes ~1 ms late when the process
	// has nothing else to run (the runtime's timer wait has millisecond
	// resolution here).
	start := time.Now()
	for round := 0; p.done.Load() < total; round++ {
		if round < 16 || time.Since(start) < callerPoll && spareCPU() {
			runtime.Gosched()
			continue
		}
		p.waiters.Add(1)
		for p.done.Load() < total {
			<-p.wake // sent after the last done count (or a stale token)
		}
		p.waiters.Add(-1)
		// Pass the token on to another waiter (more than two workers).
		if p.waiters.Load() > 0 {
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
	}
}

// pause is one round of waiting for another worker's progress: a yield
// for the first 100 rounds, then 20 µs sleeps, so that a worker
// descheduled by the OS gets the core back rather than the waiter
// spinning on it. (Such a sleep lasts ~1 ms when the process has nothing
// else to run: the runtime then waits for timers with millisecond
// resolution.)
func pause(round int) {
	if round < 100 {
		runtime.Gosched()
	} else {
		time.Sleep(20 * time.Microsecond)
	}
}

// Work is a set of independent items for Parallel.
type Work interface {
	// Do runs items [i0, i1) with the kernels on th (valid until Do
	// returns). slot is distinct
	// among the goroutines running items at the same time (0 ≤ slot <
	// Parallel's slots), so that each can use its own scratch.
	Do(th Threads, slot, i0, i1 int)
}

// itemsJob hands out a Work's items in chunks (see Parallel).
type itemsJob struct {
	w               Work
	n, chunk, slots int
	next            atomic.Int64
	joined          atomic.Int32
	busy            atomic.Int32 // goroutines inside a chunk
	idle            atomic.Int32 // goroutines out of chunks, helping (see help)
	// board holds, per slot, the kernel call its chunk is in (a team and
	// its id; id 0 when none), for idle goroutines to join.
	board []boardEntry
}

type boardEntry struct {
	t  atomic.Pointer[team]
	id atomic.Uint64
	_  [48]byte // one cache line each: written on every kernel call
}

func (j *itemsJob) run() {
	slot := int(j.joined.Add(1)) - 1
	th := Threads{crew: j, slot: slot}
	for {
		i := int(j.next.Load())
		if i >= j.n {
			break
		}
		size := min(j.chunk, ceilDiv(j.n-i, j.slots))
		j.busy.Add(1)
		if j.next.CompareAndSwap(int64(i), int64(i+size)) {
			j.w.Do(th, slot, i, i+size)
		}
		j.busy.Add(-1)
	}
	j.help()
}

// helpSpin is how long help polls for the next kernel call of a chunk
// before it polls with sleeps: the calls of a forward pass come back to
// back.
const helpSpin = 100 * time.Microsecond

// help joins the kernel calls of the chunks still in progress until there
// are none: the goroutines that ran out of chunks finish the last ones
// together instead of waiting for them (a chunk's owner descheduled by
// the OS then holds up the others by at most one task of one kernel).
func (j *itemsJob) help() {
	j.idle.Add(1)
	defer j.idle.Add(-1)
	since := time.Now()
	var seen [16]uint64 // the call last joined per slot: its tasks are taken
	for j.busy.Load() > 0 {
		found := false
		for s := range j.board {
			e := &j.board[s]
			id := e.id.Load()
			if id == 0 || s < len(seen) && seen[s] == id {
				continue
			}
			if t := e.t.Load(); t != nil {
				t.join(id)
				// Past seen's slots a call is joined again on every pass:
				// that is no news, or the loop would never back off.
				if s < len(seen) {
					seen[s], found = id, true
				}
			}
		}
		switch {
		case found:
			since = time.Now()
		case time.Since(since) < helpSpin:
			runtime.Gosched()
		default:
			// The owner is between kernel calls for long, or descheduled:
			// poll gently rather than take a core it may need.
			time.Sleep(20 * time.Microsecond)
		}
	}
}

// parallel runs r on the chunk owner in slot and on the idle goroutines
// of the call that join it from the board.
func (j *itemsJob) parallel(slot int, r runner) {
	t, id := newTeam(r)
	e := &j.board[slot]
	e.t.Store(t)
	e.id.Store(id)
	r.run()
	e.id.Store(0)
	t.close()
}

var itemsPool = sync.Pool{New: func() any { return new(itemsJob) }}

// Parallel runs w.Do over items 0..n-1 on the caller and the pool's
// helpers (at most slots goroutines, GOMAXPROCS or n if fewer) and returns
// when all are done. It is for coarse work, such as whole forward passes
// of images: no join per operation, as the kernels inside an item run on
// the item's goroutine alone (with the blocking of one thread) while the
// other goroutines have items of their own. Items are handed out in
// chunks of at most chunk, shrinking towards the end (remaining/slots,
// "guided"), so that whoever runs takes the next chunk; a goroutine
// that runs out of chunks joins the kernel calls of the chunks still in
// progress. A helper that the OS does not schedule in time does fewer
// chunks (or none: the caller waits only for chunks in progress, as for
// every kernel call), and one descheduled inside a chunk holds up the
// others by one kernel task rather than a whole chunk.
func Parallel(n, chunk, slots int, w Work) {
	if n <= 0 {
		return
	}
	nw := min(n, slots, runtime.GOMAXPROCS(0))
	j := itemsPool.Get().(*itemsJob)
	j.w, j.n, j.chunk, j.slots = w, n, max(1, chunk), max(1, nw)
	j.next.Store(0)
	j.joined.Store(0)
	if cap(j.board) < nw {
		j.board = make([]boardEntry, nw)
	}
	j.board = j.board[:nw]
	parallel(nw, j)
	j.w = nil
	itemsPool.Put(j)
}
