package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maeembed/maeembed/internal/testwait"
	"github.com/maeembed/maeembed/pipeline"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/sources/sourcetest"
	"github.com/maeembed/maeembed/stages"
)

// memSource yields copies of one image, then waits like a quiet topic. With
// a budget it takes each item's bytes from it as a Budgeted source does
// (Item.Release); without, the engine's read stage takes them. It records
// every call of each item's Ack and Release, not only the first.
type memSource struct {
	data   []byte
	budget sources.Budget
	odd    []byte // item oddAt's bytes, if set
	oddAt  int

	mu       sync.Mutex
	next     int
	acks     map[string][]error
	releases map[string]int
}

func newMemSource(t *testing.T, budget sources.Budget) *memSource {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(tiny, "images", "img_000.png"))
	if err != nil {
		t.Fatal(err)
	}
	return &memSource{data: data, budget: budget, acks: map[string][]error{}, releases: map[string]int{}}
}

func (s *memSource) Next(ctx context.Context) (sources.Item, error) {
	s.mu.Lock()
	i := s.next
	s.next++
	s.mu.Unlock()
	id := fmt.Sprintf("m%04d", i)
	it := sources.Item{ID: id, Data: s.data, Pos: sources.Position{Index: int64(i), Row: -1, Path: id}}
	if s.odd != nil && i == s.oddAt {
		it.Data = s.odd
	}
	it.Ack = func(err error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.acks[id] = append(s.acks[id], err)
	}
	if s.budget != nil {
		release, err := s.budget.AcquireInput(ctx, int64(len(it.Data)))
		if err != nil {
			s.mu.Lock()
			s.next-- // not emitted
			s.mu.Unlock()
			return sources.Item{}, err
		}
		it.Release = func() {
			s.mu.Lock()
			s.releases[id]++
			s.mu.Unlock()
			release()
		}
	}
	return it, nil
}

func (s *memSource) Close() error { return nil }

// emitted is the number of items Next returned.
func (s *memSource) emitted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// check fails t unless each emitted item was acked exactly once, with an
// error (nothing was published), and, from a budgeted source, released
// exactly once.
func (s *memSource) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < s.next; i++ {
		id := fmt.Sprintf("m%04d", i)
		if c := s.acks[id]; len(c) != 1 || c[0] == nil {
			t.Errorf("%s: acks %v, want one with an error", id, c)
		}
		if s.budget != nil && s.releases[id] != 1 {
			t.Errorf("%s: released %d times, want once", id, s.releases[id])
		}
	}
}

// stallModel and stallOutput hold the run up at one stage (gate) and then
// fail fatally there. The output acks what it was given with an error
// when aborted, as the sinks do.
type stallModel struct {
	gate <-chan struct{}
	fail bool
}

func (m stallModel) Run(imgs []*Image) (int, error) {
	if m.fail {
		<-m.gate
		return 0, pipeline.Fatal(errors.New("model broke"))
	}
	return len(imgs), nil
}

func (stallModel) Release(int) {}

type stallOutput struct {
	gate    <-chan struct{}
	fail    bool
	pending []func(error)
}

func (o *stallOutput) Write(imgs []*Image, _ int) error {
	for _, im := range imgs {
		o.pending = append(o.pending, im.Item.Ack)
	}
	if o.fail {
		<-o.gate
		return errors.New("disk full")
	}
	return nil
}

func (o *stallOutput) Flush() error { return nil }
func (o *stallOutput) Close() error { return o.end(nil) }
func (o *stallOutput) Abort() error { return o.end(errors.New("output aborted")) }

func (o *stallOutput) end(err error) error {
	for _, ack := range o.pending {
		ack(err)
	}
	o.pending = nil
	return nil
}

// runAborted runs e over src in the background; stop (called once the
// run is where the test wants it) opens the gate at which the run fails,
// and returns Run's error. A run that does not end after its abort fails
// the test rather than hanging it.
func runAborted(t *testing.T, e *Engine[int], src sources.Source, gate chan struct{}) (stop func() error) {
	res := make(chan error, 1)
	go func() { res <- e.Run(context.Background(), src) }()
	return func() error {
		t.Helper()
		close(gate)
		select {
		case err := <-res:
			return err
		case <-time.After(time.Minute):
			t.Fatal("the run did not end after its abort")
			return nil
		}
	}
}

// A run that fails fatally (the model, or the output's write) while items
// wait in every channel between its stages gives all of them back: the
// memory budget holds nothing after it, each item read was released once
// and acked once, with an error (not durable: retried on resume,
// redelivered by Kafka). Whether the source takes the bytes from the
// budget (files, Kafka) or the read stage does, and with KeepData (the
// bytes held until the write).
func TestAbortGivesBackWhatItemsInFlightHold(t *testing.T) {
	_, _, pre := tinyEmbedder(t, 2)
	for _, failAt := range []string{"model", "write"} {
		for _, budgeted := range []bool{true, false} {
			for _, keep := range []bool{false, true} {
				t.Run(fmt.Sprintf("fail=%s/budgeted=%v/keep=%v", failAt, budgeted, keep), func(t *testing.T) {
					budget := stages.NewBudget(64 << 20)
					pre := pre
					pre.Budget = budget
					src := newMemSource(t, nil)
					if budgeted {
						src.budget = budget // as SetBudget would
					}
					gate := make(chan struct{})
					out := &stallOutput{gate: gate, fail: failAt == "write"}
					e := New(Config{Preprocess: pre, ImageSize: pre.Size, BatchSize: 2, Workers: 2, Budget: budget, KeepData: keep},
						stallModel{gate: gate, fail: failAt == "model"}, out)
					stop := runAborted(t, e, src, gate)
					// Backpressure from the stalled stage fills every
					// channel before it (Stats: a stage's queue is its input).
					full := []string{"read", "batch", "model"}
					if failAt == "write" {
						full = append(full, "write")
					}
					testwait.Until(t, "the channels to fill", func() bool {
						for _, st := range e.Stats() {
							for _, name := range full {
								if st.Name == name && st.Queue < st.QueueCap {
									return false
								}
							}
						}
						return true
					})
					err := stop()
					if want := map[string]string{"model": "model broke", "write": "disk full"}[failAt]; err == nil || !strings.Contains(err.Error(), want) {
						t.Fatalf("Run = %v, want the %s's failure", err, failAt)
					}
					src.check(t)
					if b := budget.InUse(); b != 0 {
						t.Errorf("%d bytes held in the budget after the aborted run", b)
					}
					if c := e.Counts(); c.Written != 0 {
						t.Errorf("counts %+v after a run that published nothing", c)
					}
				})
			}
		}
	}
}

// A run aborted (a fatal error, not its context) while the read stage
// waits for room in the memory budget stops waiting: it does not hang on
// room that only the dropped items could give back, once every stage has
// stopped. (With KeepData the items hold their bytes until their row is
// written, and the write stalls, so the budget fills; the failed write
// gives back its batch's, too little for the next input.)
func TestAbortEndsTheReadStagesWaitForTheBudget(t *testing.T) {
	_, _, pre := tinyEmbedder(t, 2)
	budget := stages.NewBudget(256 << 10) // room to decode, and 4 inputs
	pre.Budget = budget
	src := newMemSource(t, nil)                                        // not budgeted: the read stage takes the bytes
	src.data = append(src.data, make([]byte, 16<<10-len(src.data))...) // (after the PNG's end)
	n := int64(len(src.data))
	fit := int(budget.Size() / 4 / n) // inputs the input share holds
	src.odd, src.oddAt = make([]byte, 3*n), fit
	gate := make(chan struct{})
	e := New(Config{Preprocess: pre, ImageSize: pre.Size, BatchSize: 2, Workers: 2, Budget: budget, KeepData: true},
		stallModel{}, &stallOutput{gate: gate, fail: true})
	stop := runAborted(t, e, src, gate)
	// fit items hold the input share and the next one was read: the read
	// stage waits (or is about to) for room the stalled write keeps.
	testwait.Until(t, "the budget to fill", func() bool { return src.emitted() == fit+1 && budget.InUse() == int64(fit)*n })
	if err := stop(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Run = %v, want the write's failure", err)
	}
	src.check(t)
	if b := budget.InUse(); b != 0 {
		t.Errorf("%d bytes held in the budget after the aborted run", b)
	}
}

// Parquet rows alias their batch, whose budget share comes back when the
// source has moved on (or closed) and every row of it is released: a run
// aborted in the middle of a batch releases the rows it dropped, so after
// Close the budget holds nothing. Every row read is acked once.
func TestAbortedParquetRunGivesBackItsBatches(t *testing.T) {
	dir := t.TempDir()
	writeBMPRows(t, filepath.Join(dir, "rows.parquet"), 48, 32, 32)
	_, _, pre := tinyEmbedder(t, 2)
	for _, at := range []int{0, 5, 31, 32, 40} {
		budget := stages.NewBudget(64 << 20)
		pre := pre
		pre.Budget = budget
		r, err := sources.OpenWith([]string{dir}, nil, sources.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, abort := context.WithCancel(context.Background())
		src := &sourcetest.AbortAt{Reader: r, At: at, Abort: abort}
		e := New(Config{Preprocess: pre, ImageSize: pre.Size, BatchSize: 2, Workers: 2, Budget: budget}, stallModel{}, &stallOutput{})
		if err := e.Run(ctx, src); err == nil {
			t.Errorf("aborted at row %d: the run succeeded", at)
		}
		r.Close()
		if b := budget.InUse(); b != 0 {
			t.Errorf("aborted at row %d: %d bytes held in the budget after Close", at, b)
		}
		if st := r.Stats(); st.Acked != st.Emitted || st.Emitted != int64(at+1) {
			t.Errorf("aborted at row %d: %d rows read, %d acked", at, st.Emitted, st.Acked)
		}
	}
}

// When the output's Write fails, the error rows of the same batch (its
// items that failed before the output) are not written either: they are
// acked with the failure, like the rows the output refused.
func TestFailedWriteAcksTheBatchsErrorRows(t *testing.T) {
	_, _, pre := tinyEmbedder(t, 2)
	src := newMemSource(t, nil)
	src.odd, src.oddAt = []byte("not a png"), 0 // batch 0: an error row and an output row
	gate := make(chan struct{})
	close(gate) // the write fails at once
	e := New(Config{Preprocess: pre, ImageSize: pre.Size, BatchSize: 2, Workers: 2}, stallModel{}, &stallOutput{gate: gate, fail: true})
	if err := e.Run(context.Background(), src); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Run = %v, want the write's failure", err)
	}
	src.check(t)
}
