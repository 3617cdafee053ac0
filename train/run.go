package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Options of a training run besides the recipe.
type Options struct {
	Output    string // directory of checkpoints, metrics.csv, loss.png
	SaveEvery int    // checkpoint every this many optimiser steps (0: only at the end)
	Keep      int    // checkpoints kept (0: all)
	Resume    bool   // continue from OUTPUT/latest if there is one
	// Progress receives a status after every optimiser step; when nil and
	// ProgressTo is set, NewProgress(ProgressTo, …) draws it.
	Progress   func(Status)
	ProgressTo io.Writer
}

// Status describes the run after an optimiser step.
type Status struct {
	Step, TotalSteps int
	Epoch            float64 // fractional
	Loss, LR         float64
	ImagesPerSec     float64
}

// Result summarises a finished (or interrupted) run.
type Result struct {
	Steps      int
	Loss       float64 // of the last step
	Checkpoint string  // the last checkpoint written
	Images     int64   // images processed by this process
	Elapsed    time.Duration
}

// ErrInterrupted is returned (wrapped) when the context was cancelled: the
// run stopped at a step boundary after writing a checkpoint.
var ErrInterrupted = errors.New("interrupted")

// TotalSteps is the number of optimiser steps of the whole run.
func TotalSteps(images int, r Recipe) int {
	return r.Epochs * ((images / r.BatchSize) / r.AccumIter)
}

// Run trains t on ds as engine_pretrain.py's train_one_epoch does, epoch
// after epoch: iteration i of an epoch takes the next batch of the seeded
// epoch order, sets the lr of fractional epoch i/len + epoch when i is a
// multiple of AccumIter, accumulates the gradients of loss/AccumIter, and
// steps AdamW after every AccumIter iterations. Batches are dropped at the
// epoch's end (drop_last). With o.Resume it continues from the latest
// checkpoint in o.Output, ending bitwise where an uninterrupted run would.
// A non-finite loss stops the run with an error naming the step; nothing
// is written for it, the last checkpoint stays the last good one.
func Run(ctx context.Context, t *Trainer, ds *Dataset, o Options) (*Result, error) {
	r := t.Recipe
	n := len(ds.Images)
	ipe := n / r.BatchSize
	if ipe == 0 {
		return nil, fmt.Errorf("%s fewer than one batch of %d: lower --batch-size", counted(int64(n), "usable image is", "usable images are"), r.BatchSize)
	}
	if ipe < r.AccumIter {
		return nil, fmt.Errorf("%s fewer than --accum-iter %d", counted(int64(ipe), "batch per epoch is", "batches per epoch are"), r.AccumIter)
	}
	if err := os.MkdirAll(o.Output, 0o755); err != nil {
		return nil, err
	}
	st := State{Recipe: r, Model: t.Model.Config, Dataset: ds.Fingerprint(), Images: n}
	res := &Result{}
	if o.Resume {
		dir, err := LatestCheckpoint(o.Output)
		if err != nil {
			return nil, err
		}
		if dir != "" {
			if st, err = LoadCheckpoint(dir, t, st.Dataset); err != nil {
				return nil, err
			}
			res.Checkpoint, res.Steps, res.Loss = dir, st.Step, st.Loss
			slog.Info("resuming", "checkpoint", dir, "step", st.Step, "epoch", st.Epoch, "iter", st.Iter)
		} else {
			// Not an error: a run interrupted before its first checkpoint
			// (or the first run of a script that always passes --resume)
			// has nothing to resume. Say so, as a wrong --output would
			// otherwise train from scratch unnoticed.
			slog.Warn(fmt.Sprintf("--resume: no checkpoint in %s: starting from step 0", o.Output), "output", o.Output)
		}
	} else if dir, _ := LatestCheckpoint(o.Output); dir != "" {
		return nil, fmt.Errorf("%s already holds checkpoints (%s): pass --resume to continue, or another --output", o.Output, dir)
	}
	if ctx.Err() != nil {
		// A signal while the checkpoint loaded (or as the training set
		// was read): stop before the first step, writing nothing, rather
		// than after a step and a checkpoint of it.
		if res.Checkpoint != "" {
			return res, fmt.Errorf("%w before the first step of this run: nothing written, %s is still the latest checkpoint; rerun with --resume to continue", ErrInterrupted, res.Checkpoint)
		}
		return nil, fmt.Errorf("%w before the first step: nothing written; rerun to start", ErrInterrupted)
	}
	metrics, err := openMetrics(filepath.Join(o.Output, "metrics.csv"), st.Step)
	if err != nil {
		return nil, err
	}
	defer metrics.Close()

	c := t.Model.Config
	patches := make([]float32, r.BatchSize*c.NumPatches()*c.PatchDim())
	noise := make([]float32, r.BatchSize*c.NumPatches())
	b := &Batcher{Data: ds, Cfg: c, Seed: r.Seed, Batch: r.BatchSize}
	total := TotalSteps(n, r)
	if o.Progress == nil && o.ProgressTo != nil {
		o.Progress = NewProgress(o.ProgressTo, total, 30*time.Second)
	}
	start := time.Now()
	save := func() error {
		path, err := SaveCheckpoint(o.Output, t, st, o.Keep)
		if err != nil {
			return err
		}
		res.Checkpoint = path
		return nil
	}
	var lossSum float64
	var micro int
	var lr float64
	lastSaved := st.Step
	for epoch := st.Epoch; epoch < r.Epochs; epoch++ {
		order := EpochOrder(r.Seed, epoch, n)
		first := 0
		if epoch == st.Epoch {
			first = st.Iter
		}
		for it := first; it < ipe; it++ {
			if it%r.AccumIter == 0 {
				lr = r.LRAt(float64(it)/float64(ipe) + float64(epoch))
			}
			sample := (int64(epoch)*int64(ipe) + int64(it)) * int64(r.BatchSize)
			b.Fill(patches, noise, order, it*r.BatchSize, sample)
			loss, err := t.Accumulate(patches, noise, r.BatchSize)
			if err != nil {
				return res, err
			}
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				last := res.Checkpoint
				if last == "" {
					last = "none written yet"
				}
				return res, fmt.Errorf("loss is %v at step %d (epoch %d, iteration %d): stopping; the last good checkpoint is %s (lower --blr or check the inputs)", loss, st.Step+1, epoch, it, last)
			}
			res.Images += int64(r.BatchSize)
			lossSum += loss
			micro++
			if (it+1)%r.AccumIter != 0 {
				continue
			}
			t.Opt.Update(lr)
			st.Step++
			st.Loss = lossSum / float64(micro)
			lossSum, micro = 0, 0
			st.Epoch, st.Iter = epoch, it+1
			if st.Iter == ipe {
				st.Epoch, st.Iter = epoch+1, 0
			}
			res.Steps, res.Loss = st.Step, st.Loss
			ef := float64(epoch) + float64(it+1)/float64(ipe)
			if err := metrics.Add(st.Step, ef, st.Loss, lr); err != nil {
				return res, err
			}
			if o.Progress != nil {
				o.Progress(Status{Step: st.Step, TotalSteps: total, Epoch: ef, Loss: st.Loss, LR: lr,
					ImagesPerSec: float64(res.Images) / time.Since(start).Seconds()})
			}
			if o.SaveEvery > 0 && st.Step%o.SaveEvery == 0 {
				if err := save(); err != nil {
					return res, err
				}
				lastSaved = st.Step
			}
			if ctx.Err() != nil {
				if lastSaved != st.Step {
					if err := save(); err != nil {
						return res, err
					}
				}
				res.Elapsed = time.Since(start)
				return res, fmt.Errorf("%w at step %d: checkpoint %s written; rerun with --resume to continue", ErrInterrupted, st.Step, res.Checkpoint)
			}
		}
	}
	if lastSaved != st.Step || res.Checkpoint == "" {
		if err := save(); err != nil {
			return res, err
		}
	}
	res.Elapsed = time.Since(start)
	if err := metrics.Close(); err != nil {
		return res, err
	}
	if err := PlotLoss(filepath.Join(o.Output, "metrics.csv"), filepath.Join(o.Output, "loss.png")); err != nil {
		return res, fmt.Errorf("loss curve: %w", err)
	}
	return res, nil
}

// counted is n with the words that follow it for one or for many:
// counted(1, "image is", "images are") is "1 image is", of 3 "3 images
// are".
func counted(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
