package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
)

// itemsWork is a Parallel work whose items are batches of rows of a small
// attention block (LayerNorm, qkv, attention, proj), each item of a
// different length so that goroutines run out of items while others are
// still inside theirs and join their kernel calls.
type itemsWork struct {
	x, out   []float32
	qkvW, pW *Packed
	gamma    []float32
	bias     []float32
	scratch  [][]float32 // per slot
	done     []atomic.Int32
	tokens   int
	d, heads int
}

func (w *itemsWork) Do(th Threads, slot, i0, i1 int) {
	for i := i0; i < i1; i++ {
		w.done[i].Add(1)
		w.image(th, w.scratch[slot], i, 1)
	}
}

// image computes images b..b+n-1 into out with scratch s on th.
func (w *itemsWork) image(th Threads, s []float32, b, n int) {
	t, d := w.tokens, w.d
	rows := n * t
	x := w.x[b*t*d : (b+n)*t*d]
	h, qkv, att := s[:rows*d], s[rows*d:rows*4*d], s[rows*4*d:rows*5*d]
	th.LayerNorm(h, x, rows, d, w.gamma, w.bias, 1e-6)
	th.Linear(qkv, h, rows, w.qkvW, w.bias, ActNone, nil)
	th.AttentionIn(FP32, att, qkv, n, t, w.heads, d/w.heads)
	th.Linear(w.out[b*t*d:(b+n)*t*d], att, rows, w.pW, w.bias, ActGELU, nil)
}

// Items run by Parallel, helped or not, give bitwise what the same
// kernels give on all cores for the whole batch, and each runs once.
func TestParallelItems(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		const n, tokens, d, heads = 7, 97, 128, 4
		r := rand.New(rand.NewPCG(5, 6))
		w := &itemsWork{x: randSlice(r, n*tokens*d), out: make([]float32, n*tokens*d),
			qkvW: PackLinear(randSlice(r, 3*d*d), 3*d, d), pW: PackLinear(randSlice(r, d*d), d, d),
			gamma: randSlice(r, d), bias: randSlice(r, 3*d), done: make([]atomic.Int32, n),
			tokens: tokens, d: d, heads: heads}
		want := make([]float32, n*tokens*d)
		ref := *w
		ref.out = want
		ref.image(All, make([]float32, 5*n*tokens*d), 0, n)
		for _, procs := range []int{1, 2, 3} {
			for _, chunk := range []int{1, 2, 4} {
				old := runtime.GOMAXPROCS(procs)
				w.scratch = make([][]float32, procs)
				for i := range w.scratch {
					w.scratch[i] = make([]float32, 5*tokens*d)
				}
				for i := range w.done {
					w.done[i].Store(0)
				}
				clear(w.out)
				Parallel(n, chunk, procs, w)
				runtime.GOMAXPROCS(old)
				for i := range w.done {
					if c := w.done[i].Load(); c != 1 {
						t.Errorf("GOMAXPROCS=%d chunk %d: item %d ran %d times", procs, chunk, i, c)
					}
				}
				sameBits(t, fmt.Sprintf("GOMAXPROCS=%d chunk %d", procs, chunk), w.out, want)
			}
		}
	})
}

// strassenItems is a Parallel work whose items are Linear calls large
// enough for Strassen–Winograd, each on its own rows.
type strassenItems struct {
	x, out []float32
	w      *Packed
	bias   []float32
	rows   int
}

func (s *strassenItems) Do(th Threads, slot, i0, i1 int) {
	k, n := s.w.K, s.w.N
	for i := i0; i < i1; i++ {
		th.Linear(s.out[i*s.rows*n:(i+1)*s.rows*n], s.x[i*s.rows*k:(i+1)*s.rows*k], s.rows, s.w, s.bias, ActGELU, nil)
	}
}

// A Strassen–Winograd Linear inside a Parallel item (its own goroutine,
// joined by idle ones) gives bitwise what the same call gives on all
// cores.
func TestParallelItemsStrassen(t *testing.T) {
	defer SetStrassen(true)()
	forEachPath(t, func(t *testing.T) {
		const items, rows, k, n = 3, 257, 2048, 512
		r := rand.New(rand.NewPCG(7, 8))
		s := &strassenItems{x: randSlice(r, items*rows*k), out: make([]float32, items*rows*n),
			w: PackLinear(randSlice(r, n*k), n, k), bias: randSlice(r, n), rows: rows}
		if !s.w.useStrassen(rows) {
			t.Fatalf("%d×%d×%d does not use Strassen–Winograd on %s: the test needs a larger shape", rows, n, k, Path())
		}
		want := make([]float32, items*rows*n)
		for i := 0; i < items; i++ {
			Linear(want[i*rows*n:(i+1)*rows*n], s.x[i*rows*k:(i+1)*rows*k], rows, s.w, s.bias, ActGELU, nil)
		}
		for _, procs := range []int{1, 2} {
			old := runtime.GOMAXPROCS(procs)
			clear(s.out)
			Parallel(items, 1, procs, s)
			runtime.GOMAXPROCS(old)
			sameBits(t, fmt.Sprintf("GOMAXPROCS=%d", procs), s.out, want)
		}
	})
}

// runningField reads the running-threads count of /proc/loadavg and
// refuses what is not that field.
func TestRunningField(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		okay bool
	}{
		{"0.45 0.61 0.87 3/200 12345\n", 3, true},
		{"12.00 9.10 7.00 17/1024 99\n", 17, true},
		{"0.45 0.61 0.87 /200 12345\n", 0, false},
		{"0.45 0.61 0.87 3", 0, false},
		{"0.45 0.61\n", 0, false},
		{"", 0, false},
		// Not what Linux writes, but no reason to poll: a count that
		// would overflow int, a sign, fields split by two spaces.
		{"0.45 0.61 0.87 18446744073709551617/200 12345\n", 0, false},
		{"0.45 0.61 0.87 -3/200 12345\n", 0, false},
		{"0.45  0.61 0.87 3/200 12345\n", 0, false},
	} {
		n, ok := runningField([]byte(c.in))
		if ok != c.okay || ok && n != c.n {
			t.Errorf("runningField(%q) = %d, %v; want %d, %v", c.in, n, ok, c.n, c.okay)
		}
	}
}
