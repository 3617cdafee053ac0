// Package alloctest counts the heap allocations that a function's own code
// makes, for tests that hold a hot path to "nothing allocated per call".
//
// testing.AllocsPerRun counts every allocation in the process, and the
// garbage collector empties sync.Pools, so on a loaded machine its result
// depends on what else runs and on when collections happen. PerRun instead
// runs with the collector off on one P (so a pool keeps what was put in it,
// in the slot the next Get looks at first) and records every allocation's
// call stack with the heap profiler: only allocations made under the
// measured call, or by code of the named packages (the workers that call
// starts), are counted. The result depends only on the code under test.
package alloctest

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// PerRun runs f twice to warm up and returns the number of heap
// allocations per run, over 3·times more runs, made under f or in a function
// whose full name starts with one of pkgs (import paths such as
// "github.com/maeembed/maeembed/mae/kernels", matched up to the '.' or '/'
// after them, or whole function names). It is not safe to call from
// parallel tests, and under the race detector sync.Pool drops items at
// random, so callers skip there (Race).
func PerRun(times int, f func(), pkgs ...string) float64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	savedRate := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = savedRate }()

	f()
	f()
	// Each snapshot's collection moves the pools' contents to their victim
	// caches, from which Get still serves them, but in another order: a
	// pool holding buffers of several sizes may hand a small one to a
	// large request once. Two runs after it, not counted, restore the
	// order. What a worker goroutine allocates in them cannot be told
	// from what it allocates in the counted runs, so the count is the
	// difference between a round of 2·times runs and one of times runs.
	a := snapshot(pkgs)
	settle(f)
	measure(times, f)
	b := snapshot(pkgs)
	settle(f)
	measure(2*times, f)
	c := snapshot(pkgs)
	return float64((c-b)-(b-a)) / float64(times)
}

// settle and measure are the frames that mark an allocation as made under
// f, not counted and counted.
//
//go:noinline
func settle(f func()) {
	f()
	f()
}

//go:noinline
func measure(times int, f func()) {
	for i := 0; i < times; i++ {
		f()
	}
}

// snapshot publishes the heap profile (one collection) and returns how
// many allocations it holds that counted accepts.
func snapshot(pkgs []string) int64 {
	runtime.GC()
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, true)
	for {
		recs = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		if n, ok = runtime.MemProfile(recs, true); ok {
			recs = recs[:n]
			break
		}
	}
	var total int64
	for i := range recs {
		if counted(recs[i].Stack(), pkgs) {
			total += recs[i].AllocObjects
		}
	}
	return total
}

const (
	pkgPath      = "github.com/maeembed/maeembed/internal/alloctest"
	measureName  = pkgPath + ".measure"
	settleName   = pkgPath + ".settle"
	snapshotName = pkgPath + ".snapshot"
)

// bookkeeping are runtime functions whose allocations are not the code's
// own: a pool allocating its per-P slots again on first use after each
// collection (the code's buffers still count through the pool's New when
// it misses), and the caches of type assertions and type switches, which
// the runtime grows at random moments (about one miss in a thousand).
var bookkeeping = map[string]bool{
	"sync.(*Pool).pinSlow":              true,
	"sync.(*poolChain).pushHead":        true,
	"runtime.buildTypeAssertCache":      true,
	"runtime.buildInterfaceSwitchCache": true,
}

// counted reports whether an allocation with call stack pcs was made under
// measure or by the packages' code, and not by snapshot itself (which runs
// under the test, in one of the packages), under settle, or by runtime
// bookkeeping.
func counted(pcs []uintptr, pkgs []string) bool {
	frames := runtime.CallersFrames(pcs)
	hit := false
	for {
		fr, more := frames.Next()
		switch {
		case fr.Function == snapshotName, fr.Function == settleName, bookkeeping[fr.Function]:
			return false
		case fr.Function == measureName:
			hit = true
		default:
			for _, p := range pkgs {
				if rest, ok := strings.CutPrefix(fr.Function, p); ok && (rest == "" || rest[0] == '.' || rest[0] == '/') {
					hit = true
				}
			}
		}
		if !more {
			return hit
		}
	}
}
