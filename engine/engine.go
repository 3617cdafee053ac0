// Package engine runs images through maeembed: read → preprocess (N
// workers, ordered) → batch → model → one ordered write stage, with
// at-least-once delivery by acknowledgement. embed, reconstruct and stream
// are wirings of it; a training step plugs in as another Model.
//
// Delivery is data. A failure at any stage does not leave the stream: the
// item is marked (Image.Err, Image.Stage) and travels on in input order to
// the write stage, which writes it as an error row. Every row handed to a
// writer carries the ack of its input (sources.Item.Ack, wrapped to count),
// and writers call it when the row is durable (package sinks). So the
// progress counters, the Kafka commits and resume all come from one
// mechanism: what the outputs published.
//
// Shutdown has two levels (Shutdown): Drain stops reading and finishes
// what is in flight; Abort (the context given to Run, or a fatal error)
// stops at once and fails every pending ack: the rows the outputs did not
// publish, and the items still between the stages, which also give back
// the memory budget they hold.
package engine

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maeembed/maeembed/pipeline"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
)

// Image is one input on its way through the engine.
type Image struct {
	Item sources.Item
	// CHW is the normalised model input, float32 [3,S,S] (stages.Tensor);
	// it belongs to the engine and is reused once the model stage returns.
	CHW []float32
	// Decoded replaces CHW when the run's Config.Prepare is set: the
	// prepared 8-bit image, which then belongs to the model stage.
	Decoded       *image.NRGBA
	Width, Height int // the decoded image's size, after its EXIF orientation
	// Err, if set, is why the item failed, at Stage ("read", "decode",
	// "resize", "model", ...). A failed image keeps its place in the
	// stream and becomes an error row.
	Err   error
	Stage string

	release func() // the memory budget Item.Data holds, with KeepData

	// An Image is pooled (Engine.newImage) and reused once the write stage
	// is done with it and the ack of the row made of it has come back:
	// refs counts those two holders. While a row holds it, Item.Ack (or
	// the error row's ack) is rowAck, bound once per pooled Image, and ack
	// is the input's own ack: no closure is made per item.
	refs     atomic.Int32
	ack      func(error)
	rowAck   func(error)
	errorRow bool // the row is an error row (else an output row)
	// retryable: the error row is of a kind a retry can get past once its
	// cause is fixed (sinks.RetryableError; Counts.Retryable).
	retryable bool
	// duplicate: the error row is a duplicate id's (sources.ErrDuplicateID).
	duplicate bool
	// overBudget: the error row is the memory budget's
	// (sinks.OverBudgetError; Counts.OverBudget).
	overBudget bool
	owner      imageOwner
}

// imageOwner is the engine an Image belongs to.
type imageOwner interface {
	rowAcked(im *Image, err error)
}

func (im *Image) onRowAck(err error) { im.owner.rowAcked(im, err) }

// free gives back the budget the image's input bytes hold (KeepData).
func (im *Image) free() {
	if im.release != nil {
		im.release()
		im.release = nil
	}
}

// Model is the model stage. Run gets the images of one batch that have not
// failed, in input order, and returns its result for them (embeddings, a
// reconstruction, a training step's loss). An error fails every image of
// the batch (wrap it with pipeline.Fatal to stop the run). Release takes a
// result back once it is written (pooled buffers).
type Model[R any] interface {
	Run(imgs []*Image) (R, error)
	Release(R)
}

// ImageChecker is a Model that can refuse one image before its batch
// runs (what Run would fail the whole batch for): such an image gets the
// error as its own, with stage "model", and the batch runs without it.
type ImageChecker interface {
	CheckImage(im *Image) error
}

// Output writes the model's results. Write gets the images that reached the
// model and their result; it must hand each image's Item.Ack to the writer
// of its row(s) (sinks.JoinAck when there are several). An error from
// Write stops the run. Flush publishes what is pending (stream mode, on a
// timer); Close publishes everything; Abort drops what is not published.
type Output[R any] interface {
	Write(imgs []*Image, result R) error
	Flush() error
	Close() error
	Abort() error
}

// Preprocessor turns encoded image bytes into the model input, a CHW
// float32 tensor [3,S,S] written into dst (len 3·S·S), and returns the
// original width and height. stages.Preprocess is the evaluation transform
// of every command; a training run plugs in its augmentation. Errors are
// per item (a *stages.Error names the stage), except when ctx ended while
// it waited (for the memory budget): then the run is aborting. Safe for
// concurrent use.
type Preprocessor interface {
	TensorContext(ctx context.Context, dst []float32, data []byte) (w, h int, err error)
}

// ImagePreparer is the preprocessing of a run that keeps 8-bit images
// rather than model tensors: a training set holds its images and crops
// them anew every epoch (package train). The image goes to the model stage
// as Image.Decoded; errors are as for a Preprocessor. Safe for concurrent
// use.
type ImagePreparer interface {
	PrepareContext(ctx context.Context, data []byte) (img *image.NRGBA, w, h int, err error)
}

// Config sizes and wires a run.
type Config struct {
	Preprocess Preprocessor
	// Prepare, if set, is used instead of Preprocess: the model stage gets
	// Image.Decoded, not Image.CHW.
	Prepare      ImagePreparer
	ImageSize    int           // S of the model input [3,S,S]
	BatchSize    int           // images per model call (>= 1)
	Workers      int           // preprocess workers; <= 0: 1
	BatchLatency time.Duration // emit a partial batch after this wait; 0 = full batches only
	// Budget, if set, bounds the encoded bytes held between the read and the
	// tensor (stages.Budget.AcquireInput; the Preprocessor bounds decoding
	// with the same budget). A source that can (sources.Budgeted: files,
	// tar, Parquet) is given it and takes each item's bytes from it before
	// reading them; for the others (a Kafka message is fetched already) the
	// read stage takes them. An input larger than the whole budget becomes
	// that item's error row, stage "read". nil: unbounded.
	Budget *stages.Budget
	// KeepData keeps each input's bytes until its row is written (a
	// dead-letter topic sends the bytes of error rows on); they count
	// against the Budget until then.
	KeepData bool
	// Errors receives the error rows; nil drops them (acked, counted,
	// logged).
	Errors sinks.Writer[sinks.ErrorRow]
	// FlushInterval, if > 0, publishes pending output at least this often.
	FlushInterval time.Duration
	// Drain, when done, stops reading: what is in flight finishes and is
	// published. nil: never.
	Drain context.Context
	// OnFailure, if set, sees every failed item (logging).
	OnFailure func(img *Image)
	// Observe, if set, gets the seconds each model batch and each write
	// took (stage "model" or "write"), for latency histograms.
	Observe func(stage string, seconds float64)
	// PublishOnAbort closes (publishes) the outputs after an abort instead
	// of aborting them: the rows they hold are complete, and publishing
	// them spares a redelivery (stream). A failed write still aborts.
	PublishOnAbort bool
}

// MaxBatchSize is the largest batch size CheckBatch accepts: beyond it a
// batch size is a slip, not a tuning (and its tensors would not fit).
const MaxBatchSize = 1 << 16

// MaxWorkers is the most preprocess workers (--workers) a run accepts:
// each is a goroutine with a slot of the ordered window, and a run
// allocates them all up front, so a slip such as --workers 100000000 would
// take minutes and gigabytes before the first image; decoding is CPU-bound
// and far fewer workers than this already keep any machine's cores busy.
const MaxWorkers = 4096

// CheckBatch checks a batch size (Config.BatchSize) before a model stage
// sizes its buffers for it: it must be in [1, MaxBatchSize]. Whether its
// tensors fit in the memory budget is BatchOptions.CheckBudget's.
func CheckBatch(size int) error {
	if size < 1 || size > MaxBatchSize {
		return fmt.Errorf("batch size %d: must be in [1, %d]", size, MaxBatchSize)
	}
	return nil
}

// The buffers of Run's channels, in batches (as many items, or one batch):
// the read and preprocess stages' outputs hold inputBuffer batches each,
// the batch stage's batchBuffer batches, the model stage's resultBuffer
// results. QueuedTensors and ResultsInFlight follow from them.
const (
	inputBuffer  = 2
	batchBuffer  = 1
	resultBuffer = 1
)

// QueuedTensors is the most model inputs (Image.CHW, float32 [3,S,S]) a
// Run with batchSize and workers preprocess workers holds at once, the
// batch the model runs included. Backpressure bounds each stage:
//
//   - preprocess: its ordered window, an image per worker and
//     inputBuffer·batchSize finished ones waiting for their turn; one
//     more taken out of the window and waiting for room in its output;
//     and that output's inputBuffer·batchSize;
//   - batch: the batch being filled, or once full waiting for room, and
//     its output's batchBuffer batches;
//   - model: the batch it runs and the next one, which the model stage
//     takes before the model is free.
//
// So 8·batchSize + workers + 1: 67 for batch 8 on two cores. Once a
// batch has run its tensors are reused; a result holds its own (see
// ResultsInFlight). A run with Config.Prepare holds no tensors.
func QueuedTensors(batchSize, workers int) int {
	bs, w := max(1, batchSize), max(1, workers)
	window := w + inputBuffer*bs
	return window + 1 + inputBuffer*bs + bs + batchBuffer*bs + 2*bs
}

// ResultsInFlight is the most model results (Model.Run's, one a batch) a
// Run holds at once before Model.Release takes them back: the model
// stage's ordered window (the one being made and resultBuffer made,
// waiting for their turn), one taken out of it and waiting for room in
// the output, resultBuffer in the output, and the one being written.
const ResultsInFlight = 1 + resultBuffer + 1 + resultBuffer + 1

// TensorBytes is the size of one model input, float32 [3,S,S].
func TensorBytes(imageSize int) int64 {
	s := int64(imageSize)
	return 4 * 3 * s * s
}

// Counts is a run's advance, from acks: an item counts once its output
// (or error row) is durable.
type Counts struct {
	// Processed is the rows handed to the writers (outputs and error
	// rows): the run's advance, which a part of 100,000 rows does not hold
	// back until it is published. The others count publications.
	Processed int64
	Written   int64 // outputs published
	Failed    int64 // error rows published (or dropped, when there is no error output)
	// Retryable is the part of Failed of a kind a retry can get past once
	// its cause is fixed (sinks.RetryableError); the rest are bad inputs.
	Retryable int64
	// Duplicates is the part of Failed that is duplicate ids
	// (sources.ErrDuplicateID): an earlier item has the id and keeps it.
	Duplicates int64
	// OverBudget is the part of Retryable that a larger memory budget
	// fixes (sinks.OverBudgetError).
	OverBudget int64
	Lost       int64 // acked with an error: not durable (retried on resume or redelivered)
	Skipped    int64 // already done by an earlier run (resume); set by the caller
}

// Engine is one run of Model into Output.
type Engine[R any] struct {
	cfg   Config
	model Model[R]
	out   Output[R]
	p     atomic.Pointer[pipeline.Pipeline]

	written, failed, lost atomic.Int64
	retryable             atomic.Int64 // the part of failed of Counts.Retryable
	duplicates            atomic.Int64 // the part of failed of Counts.Duplicates
	overBudget            atomic.Int64 // the part of retryable of Counts.OverBudget
	processed             atomic.Int64 // rows handed to a writer (Counts.Processed)
	handed                int64        // rows given to the output (write stage only)
	writeFailed           bool

	mu       sync.Mutex // serialises writes and flushes (the flush timer)
	rejected []*Image   // rows an output could not write alone (sinks.ItemError)
	chw      sync.Pool
	images   sync.Pool // *Image (newImage, unref)
	rows     []sinks.ErrorRow
	firstErr atomic.Pointer[string]
	// stageErrs counts failed items by the pipeline stage they failed in
	// (errorStages): their failures travel as error rows, not as errors
	// the pipeline sees, so its own per-stage counts stay 0.
	stageErrs [len(errorStages)]atomic.Int64
}

// errorStages are the pipeline stages an item can fail in, in order.
var errorStages = [...]string{"read", "preprocess", "model", "write"}

// idleStages are the statistics of Run's stages, in order, for a run that
// ran none of them (Batch.NothingLeft): its summary names every stage, idle.
func idleStages() []pipeline.StageStats {
	var st []pipeline.StageStats
	for _, name := range []string{"read", "preprocess", "batch", "model", "write"} {
		st = append(st, pipeline.StageStats{Name: name})
	}
	return st
}

// pipelineStage maps an error row's stage (read, decode, resize, ...) to
// the index in errorStages of the pipeline stage that ran it.
func pipelineStage(stage string) int {
	switch stage {
	case "read":
		return 0
	case "model":
		return 2
	case "write":
		return 3
	}
	return 1 // decode, resize, preprocess
}

// New prepares a run; nothing starts before Run.
func New[R any](cfg Config, model Model[R], out Output[R]) *Engine[R] {
	if cfg.BatchSize < 1 {
		cfg.BatchSize = 1
	}
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	e := &Engine[R]{cfg: cfg, model: model, out: out}
	size := cfg.ImageSize
	e.chw.New = func() any { return make([]float32, 3*size*size) }
	e.images.New = func() any {
		im := &Image{owner: e}
		im.rowAck = im.onRowAck
		return im
	}
	return e
}

// newImage is a pooled Image for item it, held once (by the pipeline up to
// the write stage, which unrefs it).
func (e *Engine[R]) newImage(it sources.Item) *Image {
	im := e.images.Get().(*Image)
	im.Item = it
	im.refs.Store(1)
	return im
}

// unref drops one hold on im; the last one gives it back to the pool.
func (e *Engine[R]) unref(im *Image) {
	if im.refs.Add(-1) != 0 {
		return
	}
	im.Item, im.CHW, im.Decoded, im.Width, im.Height = sources.Item{}, nil, nil, 0, 0
	im.Err, im.Stage, im.release, im.ack, im.errorRow, im.retryable, im.duplicate, im.overBudget = nil, "", nil, nil, false, false, false, false
	e.images.Put(im)
}

// Counts is a snapshot of the run's advance; safe at any time.
func (e *Engine[R]) Counts() Counts {
	return Counts{Processed: e.processed.Load(), Written: e.written.Load(), Failed: e.failed.Load(), Retryable: e.retryable.Load(), Duplicates: e.duplicates.Load(), OverBudget: e.overBudget.Load(), Lost: e.lost.Load()}
}

// Stats are the per-stage counters of the run (nil before Run); a stage's
// Errors include the items that failed in it (their error rows).
func (e *Engine[R]) Stats() []pipeline.StageStats {
	p := e.p.Load()
	if p == nil {
		return nil
	}
	st := p.Stats()
	for i := range st {
		for j, name := range errorStages {
			if st[i].Name == name {
				st[i].Errors += e.stageErrs[j].Load()
			}
		}
	}
	return st
}

// FirstError is "id: error" of the first failed item that is not a
// duplicate id (sources.ErrDuplicateID), or "".
func (e *Engine[R]) FirstError() string {
	if s := e.firstErr.Load(); s != nil {
		return *s
	}
	return ""
}

// Run reads src to the end (or until Drain), then closes the outputs:
// everything finished is published. Cancelling ctx aborts, and so does a
// fatal error: outputs are aborted and unpublished rows acked with an
// error; the items read but not yet handed to a writer are acked with the
// abort's cause (so nothing read stays unacked: a resume retries them, a
// Kafka offset is not committed past them) and give back the memory
// budget they hold. It returns the first fatal error (a write that failed,
// a source that broke) or ctx's cause.
func (e *Engine[R]) Run(ctx context.Context, src sources.Source) error {
	p := pipeline.New(ctx, pipeline.Options{OnError: e.stray})
	e.p.Store(p)
	if e.cfg.Drain != nil {
		stop := context.AfterFunc(e.cfg.Drain, p.Drain)
		defer stop()
	}
	stopFlush := e.flushEvery(p)

	bs := e.cfg.BatchSize
	// The run's abort (Run's ctx, or a fatal error), not a drain.
	abort := p.Context()
	if b, ok := src.(sources.Budgeted); ok && e.cfg.Budget != nil {
		b.SetBudget(e.cfg.Budget)
	}
	items := pipeline.Source(p, "read", inputBuffer*bs, func(ctx context.Context) (readItem, error) {
		it, err := src.Next(ctx)
		if err != nil {
			return readItem{}, err
		}
		if it.Release != nil { // the source took the bytes from the budget
			return readItem{it, it.Release}, nil
		}
		// The wait ends with the run's abort, not with a drain: a drain
		// finishes this item too, and the items in flight free the room.
		release, err := e.cfg.Budget.AcquireInput(abort, int64(len(it.Data)))
		switch {
		case errors.Is(err, stages.ErrOverBudget): // that item's error row, not the run's end
			it.Data, it.Err, release, err = nil, &stages.Error{Stage: "read", Err: err}, func() {}, nil
		case err != nil && it.Ack != nil:
			it.Ack(err) // aborted: not durable
		}
		return readItem{it, release}, err
	})
	images := pipeline.Map(p, "preprocess", items, pipeline.Config{Workers: e.cfg.Workers, Buffer: inputBuffer * bs, Ordered: true}, e.preprocess)
	batches := pipeline.Batch(p, "batch", images, bs, e.cfg.BatchLatency, batchBuffer)
	type done struct {
		imgs   []*Image
		ok     []*Image
		result R
		ran    bool
	}
	var okBuf sync.Pool
	okBuf.New = func() any { return make([]*Image, 0, bs) }
	checker, _ := any(e.model).(ImageChecker)
	results := pipeline.Map(p, "model", batches, pipeline.Config{Workers: 1, Buffer: resultBuffer, Ordered: true},
		func(ctx context.Context, b []*Image) (done, error) {
			ok := okBuf.Get().([]*Image)[:0]
			for _, im := range b {
				if im.Err == nil && checker != nil {
					if err := checker.CheckImage(im); err != nil {
						im.Err, im.Stage = err, "model"
					}
				}
				if im.Err == nil {
					ok = append(ok, im)
				}
			}
			d := done{imgs: b, ok: ok}
			if len(ok) > 0 {
				start := time.Now()
				r, err := e.model.Run(ok)
				e.observe("model", start)
				if pipeline.IsFatal(err) {
					// The batch is this function's (not the pipeline's to
					// drop): its inputs are not durable.
					for _, im := range b {
						e.drop(im, err)
					}
					okBuf.Put(ok[:0])
					return d, err
				}
				if err != nil {
					for _, im := range ok {
						im.Err, im.Stage = err, "model"
					}
					d.ok = ok[:0]
				} else {
					d.result, d.ran = r, true
				}
			}
			for _, im := range b {
				if im.CHW != nil {
					e.chw.Put(im.CHW)
					im.CHW = nil
				}
			}
			return d, nil
		})
	pipeline.Sink(p, "write", results, 1, func(ctx context.Context, d done) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		start := time.Now()
		err := e.write(d.imgs, d.ok, d.result, d.ran)
		e.observe("write", start)
		for _, im := range d.imgs { // handed to the writers (KeepData)
			im.free()
			e.unref(im)
		}
		if d.ran {
			e.model.Release(d.result)
		}
		okBuf.Put(d.ok[:0])
		return err
	})

	// An abort drops what is between the stages: each item gives back the
	// memory budget it holds and is acked with the abort's cause (not
	// durable: retried on resume, redelivered by Kafka).
	pipeline.Drop(p, items, func(rd readItem, cause error) {
		rd.release()
		if rd.Ack != nil {
			rd.Ack(cause)
		}
	})
	pipeline.Drop(p, images, e.drop)
	pipeline.Drop(p, batches, func(b []*Image, cause error) {
		for _, im := range b {
			e.drop(im, cause)
		}
	})
	pipeline.Drop(p, results, func(d done, cause error) {
		for _, im := range d.imgs {
			e.drop(im, cause)
		}
		if d.ran {
			e.model.Release(d.result)
		}
		okBuf.Put(d.ok[:0])
	})

	err := p.Wait()
	stopFlush()
	return e.finish(err)
}

// drop gives back what im holds when the run aborts before its row is
// handed to a writer: the budget of its bytes (KeepData), its tensor, and
// its input's ack, called with the abort's cause.
func (e *Engine[R]) drop(im *Image, cause error) {
	im.free()
	if im.CHW != nil {
		e.chw.Put(im.CHW)
		im.CHW = nil
	}
	if im.Item.Ack != nil {
		im.Item.Ack(cause)
	}
	e.unref(im)
}

func (e *Engine[R]) observe(stage string, start time.Time) {
	if e.cfg.Observe != nil {
		e.cfg.Observe(stage, time.Since(start).Seconds())
	}
}

// readItem is an item as read: its encoded bytes count against the memory
// budget from the read until its tensor is made (release), or with
// KeepData until its row is written.
type readItem struct {
	sources.Item
	release func()
}

func (e *Engine[R]) preprocess(ctx context.Context, rd readItem) (*Image, error) {
	it := rd.Item
	im := e.newImage(it)
	if e.cfg.KeepData {
		im.release = rd.release // the write stage frees it
	} else {
		// The bytes go back to the budget (and to the source, which may
		// reuse them: sources.Item.Release), so the image lets go of them.
		defer func() { rd.release(); im.Item.Data = nil }()
	}
	if it.Err != nil {
		im.Err, im.Stage = it.Err, "read"
		return im, nil
	}
	var (
		chw  []float32
		dec  *image.NRGBA
		w, h int
		err  error
	)
	if e.cfg.Prepare == nil {
		chw = e.chw.Get().([]float32)
	}
	if dec, w, h, err = e.prepare(ctx, it.Data, chw); err != nil && chw != nil {
		e.chw.Put(chw)
	}
	if err != nil {
		var pe *stages.PanicError
		if errors.As(err, &pe) {
			// The stack tells which decoder to fix; the first few tell it,
			// and a dataset of many malformed files must not flood the
			// log with the same one.
			attrs := []any{"id", it.ID, "source", it.Pos.String(), "err", err}
			switch n := panicStacksLogged.Add(1); {
			case n < maxPanicStacks:
				attrs = append(attrs, "stack", string(pe.Stack))
			case n == maxPanicStacks:
				attrs = append(attrs, "stack", string(pe.Stack), "note", fmt.Sprintf("the stacks of further panics in this process are not logged (%d logged)", maxPanicStacks))
			}
			slog.Warn("preprocessing panicked on an input: that input fails, the run goes on", attrs...)
		}
		if ctx.Err() != nil {
			// Aborted while waiting for the memory budget: not this item's
			// fault, so no error row (a rerun resumes it).
			if it.Ack != nil {
				it.Ack(err)
			}
			im.free()
			return nil, pipeline.Fatal(err)
		}
		im.Err, im.Stage = err, "preprocess"
		var se *stages.Error
		if errors.As(err, &se) {
			im.Stage = se.Stage
		}
		return im, nil
	}
	im.CHW, im.Decoded, im.Width, im.Height = chw, dec, w, h
	return im, nil
}

// maxPanicStacks is how many preprocessing panics of a process have their
// stack logged (panicStacksLogged counts them); the later ones log their
// one-line error only, and keep their error row.
const maxPanicStacks = 3

var panicStacksLogged atomic.Int64

// prepare runs the run's Preprocessor (into chw) or ImagePreparer on one
// input. stages.Preprocess turns a decoder's panic into the image's error
// itself (stage decode); a panic that still comes out of the
// preprocessing (another Preprocessor, an augmentation) is the image's
// error too, stage preprocess: one malformed input must never end a run,
// nor crash-loop a stream worker on a message it would read again.
func (e *Engine[R]) prepare(ctx context.Context, data []byte, chw []float32) (dec *image.NRGBA, w, h int, err error) {
	defer func() {
		if v := recover(); v != nil {
			dec, w, h = nil, 0, 0
			err = &stages.Error{Stage: "preprocess", Err: fmt.Errorf("preprocessing failed on this input (%w)", &stages.PanicError{Value: v, Stack: debug.Stack()})}
		}
	}()
	if e.cfg.Prepare != nil {
		return e.cfg.Prepare.PrepareContext(ctx, data)
	}
	w, h, err = e.cfg.Preprocess.TensorContext(ctx, chw, data)
	return nil, w, h, err
}

// write is the one ordered write stage: error rows for the failed images
// of a batch, the output for the others.
func (e *Engine[R]) write(imgs, ok []*Image, result R, ran bool) error {
	e.rows = e.rows[:0]
	for _, im := range imgs { // failed before the output: in input order
		if im.Err != nil {
			im.refs.Add(1) // held by its error row until acked
			e.addErrorRow(im)
		}
	}
	e.processed.Add(int64(len(e.rows))) // (rejected rows below were counted as handed)
	if ran && len(ok) > 0 {
		for _, im := range ok {
			// Held by its row until acked (rowAcked counts it).
			im.refs.Add(1)
			im.ack, im.errorRow = im.Item.Ack, false
			im.Item.Ack = im.rowAck
		}
		e.handed += int64(len(ok))
		e.processed.Add(int64(len(ok)))
		if err := e.out.Write(ok, result); err != nil {
			e.writeFailed = true
			// No "write:" prefix: the pipeline names the stage ("stage
			// write: ...") and the sinks' errors say what they wrote.
			// The batch's error rows will not be written either: not
			// durable (the rows the output was given are its to ack).
			for i := range e.rows {
				e.rows[i].Ack(err)
			}
			return pipeline.Fatal(err)
		}
	}
	for _, im := range e.rejected { // outputs that refused one row: its error row instead
		e.addErrorRow(im) // (the output row's hold passes to the error row)
	}
	e.rejected = e.rejected[:0]
	if len(e.rows) == 0 {
		return nil
	}
	if e.cfg.Errors == nil {
		for i := range e.rows {
			e.rows[i].Ack(nil)
		}
		return nil
	}
	if err := e.cfg.Errors.Write(e.rows); err != nil {
		e.writeFailed = true
		return pipeline.Fatal(fmt.Errorf("write error rows: %w", err))
	}
	return nil
}

func (e *Engine[R]) addErrorRow(im *Image) {
	if e.firstErr.Load() == nil && !errors.Is(im.Err, sources.ErrDuplicateID) {
		s := im.Item.ID + ": " + im.Err.Error()
		e.firstErr.CompareAndSwap(nil, &s)
	}
	e.stageErrs[pipelineStage(im.Stage)].Add(1)
	if e.cfg.OnFailure != nil {
		e.cfg.OnFailure(im)
	}
	it := im.Item
	im.ack, im.errorRow = it.Ack, true
	row := sinks.ErrorRow{ID: it.ID, Stage: im.Stage, Error: im.Err.Error(), Source: it.Pos.String(), Data: it.Data,
		Ack: im.rowAck}
	im.retryable, im.overBudget = sinks.RetryableError(row.Error), sinks.OverBudgetError(row.Error)
	im.duplicate = errors.Is(im.Err, sources.ErrDuplicateID)
	e.rows = append(e.rows, row)
}

// rowAcked is the ack of a row made of im (Image.rowAck). An output row
// counts as written; one the output refused alone (sinks.ItemError) goes
// back to the write stage to become an error row carrying the input's ack.
// An error row counts as failed. Either way, a row that is not durable
// counts as lost. Then the input's own ack is called.
func (e *Engine[R]) rowAcked(im *Image, err error) {
	ack := im.ack
	switch {
	case im.errorRow && err == nil:
		e.failed.Add(1)
		if im.retryable {
			e.retryable.Add(1)
		}
		if im.duplicate {
			e.duplicates.Add(1)
		}
		if im.overBudget {
			e.overBudget.Add(1)
		}
	case err == nil:
		e.written.Add(1)
	case !im.errorRow && itemError(err) != nil:
		im.Err, im.Stage = itemError(err).Err, "write"
		im.Item.Ack = ack
		e.rejected = append(e.rejected, im) // acks are called under e.mu (Write, Flush, finish)
		return
	default:
		e.lost.Add(1)
	}
	if ack != nil {
		ack(err)
	}
	e.unref(im)
}

// itemError is err's *sinks.ItemError, or nil. (A function of its own:
// the variable errors.As writes to escapes, and in rowAcked it would be
// allocated on every ack.)
func itemError(err error) *sinks.ItemError {
	var ie *sinks.ItemError
	if errors.As(err, &ie) {
		return ie
	}
	return nil
}

// stray counts failures the pipeline routes outside the items (a source's
// Skip error): they have no item to carry them.
func (e *Engine[R]) stray(f pipeline.Failure) {
	e.processed.Add(1)
	e.failed.Add(1)
	if sinks.RetryableError(f.Err.Error()) {
		e.retryable.Add(1)
	}
	if sinks.OverBudgetError(f.Err.Error()) {
		e.overBudget.Add(1)
	}
	if e.cfg.OnFailure != nil {
		e.cfg.OnFailure(&Image{Err: f.Err, Stage: f.Stage})
	}
}

// flushEvery publishes pending output on a timer until the returned stop.
func (e *Engine[R]) flushEvery(p *pipeline.Pipeline) (stop func()) {
	if e.cfg.FlushInterval <= 0 {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(e.cfg.FlushInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				e.mu.Lock()
				err := e.out.Flush()
				if err == nil && e.cfg.Errors != nil {
					err = e.cfg.Errors.Flush()
				}
				e.mu.Unlock()
				if err != nil {
					p.Abort(fmt.Errorf("publish: %w", err))
				}
			case <-quit:
				return
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

// finish closes the outputs after the pipeline stopped: a clean end or a
// drain publishes; an abort drops what is unpublished (or publishes it,
// with PublishOnAbort); a failed write aborts. An output that was given no
// row is aborted, so a run that produced nothing leaves no empty file.
// Either way every ack has been called when finish returns.
func (e *Engine[R]) finish(runErr error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	publish := !e.writeFailed && (runErr == nil || e.cfg.PublishOnAbort)
	end := func(w interface {
		Close() error
		Abort() error
	}, used bool) error {
		if !publish || !used {
			w.Abort()
			return nil
		}
		if err := w.Close(); err != nil {
			w.Abort()
			return err
		}
		return nil
	}
	err := end(e.out, publish && e.handed > 0)
	// Rows an output refused alone while publishing (not inside a Write)
	// have no write stage left to become error rows: they are not durable.
	for _, im := range e.rejected {
		e.lost.Add(1)
		if im.Item.Ack != nil {
			im.Item.Ack(im.Err)
		}
		e.unref(im)
	}
	e.rejected = nil
	if e.cfg.Errors != nil {
		// Error rows are complete too: published unless a write failed.
		err = errors.Join(err, end(e.cfg.Errors, !e.writeFailed))
	}
	if runErr != nil {
		return runErr
	}
	return err
}
