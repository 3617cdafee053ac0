package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/mae/kernels"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
)

// openBatch checks the options embed and reconstruct share and opens the
// run's output directory and inputs.
func (e *env) openBatch(o *Options, cmd string) (*engine.Batch, error) {
	if err := o.ModelOptions.Validate(); err != nil {
		return nil, err // a usage error already
	}
	if err := o.BatchOptions.Validate(); err != nil {
		return nil, usage(err)
	}
	if err := sources.CheckExtensions(o.Source.Extensions); err != nil {
		return nil, usage(err)
	}
	if err := o.Parts.Validate(); err != nil {
		var oe *sinks.OptionError
		if errors.As(err, &oe) {
			return nil, fmt.Errorf("%w: %w", errUsage, oe.FlagError())
		}
		return nil, usage(err)
	}
	return engine.OpenBatch(cmd, o.FileOptions, o.Source, o.PreprocessOptions, e.stdin, exitInterrupted)
}

// exitInterrupted ends the process when SIGINT or SIGTERM comes while a
// run starts (OpenBatch's interrupted while a batch run's model loads,
// engine.WatchStartup's while stream or pretrain start; called once the
// engine released the output): with status 1, as an interrupted run ends.
func exitInterrupted(os.Signal) { os.Exit(1) }

// modelLoads counts the models openModel loaded in this process (a test
// checks that a rerun with nothing left to do loads none).
var modelLoads atomic.Int64

// openModel loads the model of a run and sizes the garbage collector for it.
func (e *env) openModel(o *Options, needDecoder bool) (*mae.Model, error) {
	modelLoads.Add(1)
	m, err := o.ModelOptions.Open(e.ctx, needDecoder)
	if err == nil {
		setMemoryLimit()
	}
	return m, err
}

// setMemoryLimit gives the garbage collector a soft limit of what is live
// after loading (mostly the weights) plus room for a run's buffers, unless
// GOMEMLIMIT is set. Without it the heap may grow to twice the weights
// before a collection (GOGC=100): a ViT-B run would peak near 1 GB instead
// of ~0.7 GB. A soft limit never fails an allocation; past it the collector
// just runs more often.
func setMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	debug.SetMemoryLimit(int64(ms.HeapAlloc) + 384<<20)
}

// openEmbedder loads the model of o as the embedding stage for pool, sets
// the preprocessing size and returns the output metadata of the run.
func (e *env) openEmbedder(o *Options, pool mae.Pool, pre *stages.Preprocess) (*mae.Embedder, sinks.Meta, error) {
	m, err := e.openModel(o, false)
	if err != nil {
		return nil, sinks.Meta{}, err
	}
	if err := o.CheckBudget(embedMemory(m.Config, pool, o.BatchSize), pre.Budget); err != nil {
		return nil, sinks.Meta{}, usage(err)
	}
	em, err := mae.NewEmbedder(m, pool, o.BatchSize)
	if err != nil {
		return nil, sinks.Meta{}, usage(err)
	}
	pre.Size = m.Config.ImageSize
	return em, embedMeta(o, pool, *pre, m.Config, m.Precision(), m.Kernel(), m.Fingerprint), nil
}

// embedMemory is what the model stage of an embed (or stream) run of
// model c with pool needs, for BatchOptions.CheckBudget.
func embedMemory(c mae.Config, pool mae.Pool, batch int) engine.ModelMemory {
	return engine.ModelMemory{ImageSize: c.ImageSize, Batch: c.BatchBytes(batch, false), Result: engine.EmbeddingsBytes(batch, c.EmbedDim(pool))}
}

// embedMeta is the output metadata of an embed run.
func embedMeta(o *Options, pool mae.Pool, pre stages.Preprocess, c mae.Config, p kernels.Precision, kernel, fingerprint string) sinks.Meta {
	meta := sinks.Meta{Model: o.Model.Name, Pool: string(pool), Preprocess: pre.String(), Version: version, Dim: c.Dim, Precision: p.String(), Kernel: kernel, Weights: fingerprint}
	if pool == mae.PoolTokens {
		meta.Tokens = 1 + c.NumPatches()
	}
	return meta
}

// checkEmbedder is openEmbedder for a dry run: the same checks, with the
// same errors, from the model's headers (mae.Check), without loading its
// weights. It sets the preprocessing size and returns the output metadata
// without the kernel (a resume ignores it) and without the weights'
// fingerprint, which only Spec.Fingerprint's full read gives.
func (e *env) checkEmbedder(o *Options, pool mae.Pool, pre *stages.Preprocess) (*mae.Spec, sinks.Meta, error) {
	spec, p, err := o.ModelOptions.Check(e.ctx, false)
	if err != nil {
		return nil, sinks.Meta{}, err
	}
	if err := o.CheckBudget(embedMemory(spec.Config, pool, o.BatchSize), pre.Budget); err != nil {
		return nil, sinks.Meta{}, usage(err)
	}
	if err := spec.CheckPool(pool); err != nil {
		return nil, sinks.Meta{}, usage(err)
	}
	pre.Size = spec.Config.ImageSize
	return spec, embedMeta(o, pool, *pre, spec.Config, p, "", ""), nil
}

// reportPending says, for a dry run, that its model is not on this
// machine yet: what the run would download (from where, to where, how
// big) or unpack, and that the checks used what the model is known to
// hold rather than its file.
func (e *env) reportPending(spec *mae.Spec) {
	p := spec.Pending
	if p == nil {
		return
	}
	size := "size unknown"
	if p.Size >= 0 {
		size = fmt.Sprintf("%d bytes, %.1f MiB", p.Size, float64(p.Size)/(1<<20))
	}
	if dl := p.Download; dl != nil {
		if dl.SizeErr != nil {
			size += ": " + dl.SizeErr.Error()
		}
		sum := "checked against the published md5 prefix " + dl.MD5
		if dl.MD5 == "" {
			sum = "no published checksum"
		}
		fmt.Fprintf(e.stderr, "dry run: preset %s is not in the cache; the run would download\n  %s (%s; %s)\n  to %s\n"+
			"dry run: nothing was downloaded: the model was checked from the preset's known architecture (%s), not from its file\n",
			dl.Preset, dl.URL, size, sum, dl.Path, describe(spec))
		return
	}
	fmt.Fprintf(e.stderr, "dry run: the built-in model is not unpacked yet; the run would write it (%s) to\n  %s\n"+
		"dry run: nothing was written: the model was checked from its embedded config (%s)\n", size, p.Path, describe(spec))
}

// describe is a model's architecture in a few words.
func describe(spec *mae.Spec) string {
	c := spec.Config
	dec := "no decoder"
	if spec.HasDecoder() {
		dec = "with decoder"
	}
	return fmt.Sprintf("image %d, patch %d, dim %d, depth %d, %s", c.ImageSize, c.PatchSize, c.Dim, c.Depth, dec)
}
