package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maeembed/maeembed/internal/testwait"
)

// noLeak fails the test if goroutines started during it are still running
// once it ends (after a grace period for goroutines that are exiting).
func noLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// counter is a Source function emitting 0..n-1.
func counter(n int) func(context.Context) (int, error) {
	i := 0
	return func(ctx context.Context) (int, error) {
		if i >= n {
			return 0, io.EOF
		}
		i++
		return i - 1, nil
	}
}

func collect[T any](p *Pipeline, in <-chan T) *[]T {
	var out []T
	Sink(p, "collect", in, 1, func(_ context.Context, v T) error { out = append(out, v); return nil })
	return &out
}

func TestMapUnorderedProcessesEverything(t *testing.T) {
	noLeak(t)
	p := New(context.Background(), Options{})
	src := Source(p, "src", 4, counter(1000))
	sq := Map(p, "square", src, Config{Workers: 4}, func(_ context.Context, v int) (int, error) { return v * v, nil })
	got := collect(p, sq)
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil { // idempotent
		t.Fatal(err)
	}
	sum := 0
	for _, v := range *got {
		sum += v
	}
	if len(*got) != 1000 || sum != 332833500 {
		t.Fatalf("%d items, sum %d", len(*got), sum)
	}
}

// TestMapOrderedWithErrors: random latencies, failures routed to OnError,
// survivors delivered in input order.
func TestMapOrderedWithErrors(t *testing.T) {
	noLeak(t)
	var mu sync.Mutex
	var failed []int
	p := New(context.Background(), Options{OnError: func(f Failure) {
		mu.Lock()
		defer mu.Unlock()
		if f.Stage != "work" || !strings.Contains(f.Err.Error(), "multiple of 7") {
			t.Errorf("failure %+v", f)
		}
		failed = append(failed, f.Item.(int))
	}})
	src := Source(p, "src", 0, counter(300))
	out := Map(p, "work", src, Config{Workers: 6, Buffer: 2, Ordered: true}, func(_ context.Context, v int) (string, error) {
		time.Sleep(time.Duration(rand.Intn(300)) * time.Microsecond)
		if v%7 == 0 {
			return "", fmt.Errorf("%d is a multiple of 7", v)
		}
		return fmt.Sprint(v), nil
	})
	got := collect(p, out)
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < 300; i++ {
		if i%7 != 0 {
			want = append(want, fmt.Sprint(i))
		}
	}
	if strings.Join(*got, ",") != strings.Join(want, ",") {
		t.Fatalf("order broken:\n%v", *got)
	}
	if len(failed) != 43 {
		t.Fatalf("%d failures, want 43", len(failed))
	}
	st := p.Stats()
	if st[1].Name != "work" || st[1].Items != 257 || st[1].Errors != 43 || st[1].Busy <= 0 || st[1].Workers != 6 {
		t.Fatalf("stats %+v", st[1])
	}
}

// TestBackpressure: with a stalled consumer the source reads only as far as
// the channel capacities allow.
func TestBackpressure(t *testing.T) {
	noLeak(t)
	var produced atomic.Int64
	release := make(chan struct{})
	p := New(context.Background(), Options{})
	src := Source(p, "src", 3, func(ctx context.Context) (int, error) {
		produced.Add(1)
		return 1, nil // endless
	})
	a := Map(p, "a", src, Config{Workers: 2, Buffer: 2, Ordered: true}, func(_ context.Context, v int) (int, error) { return v, nil })
	b := Batch(p, "batch", a, 4, 0, 1)
	Sink(p, "slow", b, 1, func(ctx context.Context, v []int) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	// Bound: sink holds 1 batch (4) + batch out chan 1 (4) + batch being filled (3)
	// + Map out buffer 2 + ordered window 4 + source out 3 + 1 in hand, and a few in hand.
	if n := produced.Load(); n > 30 {
		t.Fatalf("source produced %d items against a stalled sink", n)
	}
	st := p.Stats()
	if st[0].Queue != 3 || st[0].QueueCap != 3 {
		t.Fatalf("source queue %d/%d, want full 3/3", st[0].Queue, st[0].QueueCap)
	}
	p.Abort(errors.New("test over"))
	if err := p.Wait(); err == nil || err.Error() != "test over" {
		t.Fatalf("Wait = %v", err)
	}
	close(release)
}

func TestBatchSizeAndLatency(t *testing.T) {
	noLeak(t)
	p := New(context.Background(), Options{})
	src := Source(p, "src", 0, counter(10))
	got := collect(p, Batch(p, "b", src, 4, time.Hour, 0))
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*got) != "[[0 1 2 3] [4 5 6 7] [8 9]]" {
		t.Fatalf("batches %v", *got)
	}

	// A lone item is flushed after maxLatency, without waiting for more.
	in := make(chan int)
	p = New(context.Background(), Options{})
	out := Batch(p, "b", (<-chan int)(in), 8, 30*time.Millisecond, 0)
	start := time.Now()
	in <- 42
	b := <-out
	if el := time.Since(start); len(b) != 1 || b[0] != 42 || el < 25*time.Millisecond || el > time.Second {
		t.Fatalf("batch %v after %v", b, el)
	}
	in <- 1
	in <- 2
	close(in)
	if b := <-out; fmt.Sprint(b) != "[1 2]" {
		t.Fatalf("final batch %v", b)
	}
	if _, ok := <-out; ok {
		t.Fatal("out not closed")
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestDrainFinishesInFlight: after Drain, every item the source produced
// reaches the sink, and Wait reports success.
func TestDrainFinishesInFlight(t *testing.T) {
	noLeak(t)
	var produced atomic.Int64
	p := New(context.Background(), Options{})
	src := Source(p, "src", 2, func(ctx context.Context) (int, error) {
		select { // a blocking reader (like Kafka) that honours ctx
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return int(produced.Add(1)), nil
	})
	m := Map(p, "m", src, Config{Workers: 3, Ordered: true}, func(_ context.Context, v int) (int, error) {
		time.Sleep(2 * time.Millisecond)
		return v, nil
	})
	var consumed atomic.Int64
	Sink(p, "sink", Batch(p, "b", m, 5, 10*time.Millisecond, 0), 1, func(_ context.Context, v []int) error {
		consumed.Add(int64(len(v)))
		return nil
	})
	time.Sleep(50 * time.Millisecond)
	p.Drain()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if produced.Load() == 0 || consumed.Load() != produced.Load() {
		t.Fatalf("produced %d, consumed %d", produced.Load(), consumed.Load())
	}
}

func TestFatalStopsRun(t *testing.T) {
	noLeak(t)
	var errs atomic.Int64
	p := New(context.Background(), Options{OnError: func(Failure) { errs.Add(1) }})
	src := Source(p, "src", 1, func(context.Context) (int, error) { return 1, nil })
	Sink(p, "disk", src, 2, func(context.Context, int) error { return Fatal(errors.New("disk full")) })
	err := p.Wait()
	if err == nil || err.Error() != "stage disk: disk full" {
		t.Fatalf("Wait = %v", err)
	}
	if errs.Load() != 0 {
		t.Fatalf("fatal errors were routed to OnError %d times", errs.Load())
	}
}

func TestSourceErrors(t *testing.T) {
	noLeak(t)
	var routed atomic.Int64
	p := New(context.Background(), Options{OnError: func(f Failure) { routed.Add(1) }})
	i := 0
	src := Source(p, "src", 0, func(context.Context) (int, error) {
		i++
		switch {
		case i == 2:
			return 0, Skip(errors.New("one unreadable"))
		case i == 5:
			return 0, errors.New("listing failed")
		}
		return i, nil
	})
	got := collect(p, src)
	err := p.Wait()
	if err == nil || err.Error() != "source src: listing failed" || routed.Load() != 1 || len(*got) != 3 {
		t.Fatalf("Wait = %v, routed %d, got %v", err, routed.Load(), *got)
	}
}

func TestParentCancel(t *testing.T) {
	noLeak(t)
	ctx, cancel := context.WithCancel(context.Background())
	p := New(ctx, Options{})
	src := Source(p, "src", 1, func(context.Context) (int, error) { return 1, nil })
	m := Map(p, "m", src, Config{Workers: 3, Ordered: true}, func(ctx context.Context, v int) (int, error) { return v, nil })
	Sink(p, "s", Batch(p, "b", m, 3, time.Millisecond, 0), 1, func(context.Context, []int) error { return nil })
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := p.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v", err)
	}
}

// dropLog records what each Drop hook was given, by item, and the causes.
type dropLog struct {
	mu     sync.Mutex
	seen   map[int]int    // item -> times passed to a hook or finished by a stage
	hooks  map[string]int // hook -> items it got
	causes []error
}

func newDropLog() *dropLog { return &dropLog{seen: map[int]int{}, hooks: map[string]int{}} }

func (l *dropLog) add(hook string, cause error, vs ...int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range vs {
		l.seen[v]++
		if hook != "" {
			l.hooks[hook]++
		}
	}
	if hook != "" {
		l.causes = append(l.causes, cause)
	}
}

// An abort with items queued in every channel (the sink stalls, so
// backpressure fills them all, then fails fatally): each item the source
// produced is either finished by a stage function or given to the Drop
// hook of its channel, exactly once, after the stages have stopped, with
// the abort's cause. Items held inside the stages count too: the source's
// next item, the dispatcher's, an ordered Map's finished outputs, the
// batch being filled or sent.
func TestAbortDropsEveryQueuedItemOnce(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) {
			noLeak(t)
			log := newDropLog()
			var produced []int // by the source goroutine, read after Wait
			var stopped atomic.Bool
			p := New(context.Background(), Options{})
			src := Source(p, "src", 3, func(ctx context.Context) (int, error) {
				produced = append(produced, len(produced))
				return len(produced) - 1, nil // endless
			})
			sq := Map(p, "map", src, Config{Workers: 2, Buffer: 2, Ordered: ordered}, func(_ context.Context, v int) (int, error) { return v, nil })
			batches := Batch(p, "batch", sq, 4, 0, 1)
			release := make(chan struct{})
			Sink(p, "sink", batches, 1, func(ctx context.Context, b []int) error {
				log.add("", nil, b...) // the sink's own: it fails with them
				<-release
				return Fatal(errors.New("disk full"))
			})
			hook := func(name string) func(int, error) {
				return func(v int, cause error) {
					if !stopped.Load() {
						t.Errorf("%s: hook called before the stages stopped", name)
					}
					log.add(name, cause, v)
				}
			}
			Drop(p, src, hook("src"))
			Drop(p, sq, hook("map"))
			Drop(p, batches, func(b []int, cause error) {
				for _, v := range b {
					hook("batches")(v, cause)
				}
			})
			st := func(i int) bool { s := p.Stats()[i]; return s.Queue == s.QueueCap }
			// Stats: src (its output), map (src), batch (map's output), sink (batches).
			testwait.Until(t, "every channel full", func() bool { return st(0) && st(2) && st(3) })
			// The hooks run in Wait, after every goroutine: mark the point
			// just before the abort, which no hook call may precede.
			stopped.Store(true)
			close(release)
			err := p.Wait()
			if err == nil || err.Error() != "stage sink: disk full" {
				t.Fatalf("Wait = %v", err)
			}
			for _, v := range produced {
				if n := log.seen[v]; n != 1 {
					t.Errorf("item %d accounted for %d times, want 1", v, n)
				}
			}
			if len(log.seen) != len(produced) {
				t.Errorf("%d items accounted for, %d produced", len(log.seen), len(produced))
			}
			for _, h := range []string{"src", "map", "batches"} {
				if log.hooks[h] == 0 {
					t.Errorf("hook %s got nothing, its channel was full", h)
				}
			}
			for _, c := range log.causes {
				if c == nil || c.Error() != "stage sink: disk full" {
					t.Errorf("hook cause %v", c)
				}
			}
			t.Logf("%d produced, hooks %v", len(produced), log.hooks)
		})
	}
}

// An ordered Map aborted while its first item is still running: the
// outputs finished behind it wait in their slots, and the first one's
// output comes after the abort; the Drop hook of the Map's output gets
// them all. Items a function failed with a fatal error are its own.
func TestAbortDropsOrderedOutputsWaitingForTheirTurn(t *testing.T) {
	noLeak(t)
	log := newDropLog()
	var produced []int
	p := New(context.Background(), Options{})
	src := Source(p, "src", 2, func(ctx context.Context) (int, error) {
		produced = append(produced, len(produced))
		return len(produced) - 1, nil
	})
	var finished atomic.Int64
	const workers, buffer = 3, 2
	out := Map(p, "map", src, Config{Workers: workers, Buffer: buffer, Ordered: true}, func(ctx context.Context, v int) (int, error) {
		if v == 0 {
			<-ctx.Done() // finishes after the abort
			return v, nil
		}
		finished.Add(1)
		return v, nil
	})
	Drop(p, src, func(v int, _ error) { log.add("src", nil, v) })
	Drop(p, out, func(v int, _ error) { log.add("map", nil, v) })
	// Nobody reads out: 0 blocks the emitter anyway. The window is
	// workers+buffer items; all but the first finish.
	testwait.Until(t, "the window's other items finished", func() bool {
		s := p.Stats()[0]
		return finished.Load() == workers+buffer-1 && s.Queue == s.QueueCap
	})
	p.Abort(errors.New("stop"))
	if err := p.Wait(); err == nil || err.Error() != "stop" {
		t.Fatalf("Wait = %v", err)
	}
	for _, v := range produced {
		if n := log.seen[v]; n != 1 {
			t.Errorf("item %d dropped %d times, want 1", v, n)
		}
	}
	if log.hooks["map"] != workers+buffer {
		t.Errorf("the map's hook got %d outputs, want the window's %d", log.hooks["map"], workers+buffer)
	}
	if _, ok := <-out; ok {
		t.Error("an output was emitted")
	}
}
