package engine

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maeembed/maeembed/internal/testwait"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/stages"
)

// countingPreprocess is the real preprocessing, counting the model inputs
// it fills.
type countingPreprocess struct {
	stages.Preprocess
	filled *atomic.Int64
}

func (p countingPreprocess) TensorContext(ctx context.Context, dst []float32, data []byte) (int, int, error) {
	p.filled.Add(1)
	return p.Preprocess.TensorContext(ctx, dst, data)
}

// countingModel waits at gate before running each batch, then counts the
// images it ran (their tensors go back to the engine) and the results it
// made and took back.
type countingModel struct {
	gate           <-chan struct{}
	ran            atomic.Int64
	made, released atomic.Int64
}

func (m *countingModel) Run(imgs []*Image) (int, error) {
	<-m.gate
	m.ran.Add(int64(len(imgs)))
	m.made.Add(1)
	return len(imgs), nil
}

func (m *countingModel) Release(int) { m.released.Add(1) }

// settle gives the goroutines of a run a moment more, so a count that
// would pass a bound has the time to: a wait that is too short can only
// miss a failure, never make one.
func settle() { time.Sleep(50 * time.Millisecond) }

// QueuedTensors is the number of model inputs a run holds at once: with
// the model stalled on its first batch, backpressure fills every stage
// before it, and the tensors filled and not yet run reach it, no more.
// The source then stops where everything before the preprocess window is
// full too (its output, the item the window's dispatcher holds, the one
// the source waits to send).
func TestQueuedTensorsIsWhatARunHolds(t *testing.T) {
	_, _, pre := tinyEmbedder(t, 1)
	for _, c := range []struct{ batch, workers int }{{1, 1}, {2, 2}, {3, 1}, {4, 3}} {
		t.Run(fmt.Sprintf("batch=%d/workers=%d", c.batch, c.workers), func(t *testing.T) {
			var filled atomic.Int64
			gate := make(chan struct{})
			model := &countingModel{gate: gate}
			src := newMemSource(t, nil)
			e := New(Config{Preprocess: countingPreprocess{pre, &filled}, ImageSize: pre.Size, BatchSize: c.batch, Workers: c.workers},
				model, &stallOutput{})
			ctx, cancel := context.WithCancel(context.Background())
			res := make(chan error, 1)
			go func() { res <- e.Run(ctx, src) }()
			want := QueuedTensors(c.batch, c.workers)
			read := want + inputBuffer*c.batch + 2
			testwait.Until(t, fmt.Sprintf("%d tensors filled, %d items read", want, read), func() bool {
				return filled.Load() >= int64(want) && src.emitted() >= read
			})
			settle()
			if got := filled.Load() - model.ran.Load(); got != int64(want) {
				t.Errorf("%d tensors held with the model stalled, QueuedTensors says %d", got, want)
			}
			if got := src.emitted(); got != read {
				t.Errorf("%d items read with the model stalled, want %d", got, read)
			}
			cancel()
			close(gate)
			if err := <-res; err == nil {
				t.Error("the cancelled run returned nil")
			}
		})
	}
}

// ResultsInFlight is the number of model results a run holds at once:
// with the output stalled on its first write, the model stage makes
// results until backpressure stops it, and none is taken back.
func TestResultsInFlightIsWhatARunHolds(t *testing.T) {
	_, _, pre := tinyEmbedder(t, 1)
	open := make(chan struct{})
	close(open)
	model := &countingModel{gate: open}
	stall := make(chan struct{})
	src := newMemSource(t, nil)
	e := New(Config{Preprocess: pre, ImageSize: pre.Size, BatchSize: 2, Workers: 2}, model, &stallOutput{gate: stall, fail: true})
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- e.Run(ctx, src) }()
	testwait.Until(t, fmt.Sprintf("%d results made", ResultsInFlight), func() bool { return model.made.Load() >= ResultsInFlight })
	settle()
	if got := model.made.Load() - model.released.Load(); got != ResultsInFlight {
		t.Errorf("%d results held with the output stalled, ResultsInFlight says %d", got, ResultsInFlight)
	}
	cancel()
	close(stall)
	<-res
	if m, r := model.made.Load(), model.released.Load(); m != r {
		t.Errorf("%d results made, %d taken back after the run", m, r)
	}
}

// The defaults (1 GiB, batch 8) hold what a ViT-B/16 run at 224 holds, for
// embed (any pool) and reconstruct (any format), with a worker per core or
// many more.
func TestCheckBudgetAcceptsTheDefaults(t *testing.T) {
	c := mae.Presets["mae_vit_base_patch16"]
	budget := stages.NewBudget(1 << 30)
	for _, workers := range []int{0, 1, 2, 64} {
		o := BatchOptions{BatchSize: 8, Workers: workers}
		mems := map[string]ModelMemory{}
		for _, pool := range []mae.Pool{mae.PoolMean, mae.PoolTokens} {
			mems["embed "+string(pool)] = ModelMemory{ImageSize: 224, Batch: c.BatchBytes(8, false), Result: EmbeddingsBytes(8, c.EmbedDim(pool))}
		}
		for _, png := range []bool{false, true} {
			mems[fmt.Sprint("reconstruct png=", png)] = ModelMemory{ImageSize: 224, Batch: c.BatchBytes(8, true), Result: ReconstructionBytes(c, 8, 0.75, png)}
		}
		for name, m := range mems {
			if err := o.CheckBudget(m, budget); err != nil {
				t.Errorf("%s, workers %d: %v", name, workers, err)
			}
		}
	}
}

// A budget that holds the model's batch but not the tensors queued around
// it is refused, the error naming the flags and the bytes needed; the
// bound is exact, and no budget checks nothing.
func TestCheckBudgetCountsTheQueuedTensors(t *testing.T) {
	c := mae.Presets["mae_vit_base_patch16"]
	o := BatchOptions{BatchSize: 8, Workers: 2}
	m := ModelMemory{ImageSize: 224, Batch: c.BatchBytes(8, false), Result: EmbeddingsBytes(8, c.Dim)}
	need := o.RunBytes(m)
	if want := m.Batch + int64(8*8+2+1-8)*3*224*224*4 + 5*8*768*4; need != want {
		t.Errorf("RunBytes = %d, want %d", need, want)
	}
	if err := o.CheckBudget(m, stages.NewBudget(need)); err != nil {
		t.Errorf("a budget of exactly what is needed: %v", err)
	}
	err := o.CheckBudget(m, stages.NewBudget(m.Batch+1))
	if err == nil {
		t.Fatal("a budget that holds only the model's batch was accepted")
	}
	for _, w := range []string{"--memory-budget", "--batch-size 8", "--workers 2", fmt.Sprintf("(%d bytes)", need), "67 model inputs of 588 KiB"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	if err := o.CheckBudget(m, stages.NewBudget(need-1)); err == nil {
		t.Error("a budget one byte short was accepted")
	}
	if err := o.CheckBudget(m, nil); err != nil {
		t.Errorf("no budget: %v", err)
	}
	o.Workers = 0
	if err := o.CheckBudget(m, stages.NewBudget(m.Batch+1)); err == nil || !strings.Contains(err.Error(), "(one per core)") {
		t.Errorf("--workers 0: %v, want the workers named as one per core", err)
	}
}
