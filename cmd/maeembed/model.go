package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/mae/kernels"
)

// openModel loads the model of a run in the precision of --precision and
// sizes the garbage collector for it.
func (e *env) openModel(o *Options, needDecoder bool) (*mae.Model, error) {
	src := e.modelSource(o, needDecoder)
	if o.Precision != "" {
		p, err := kernels.ParsePrecision(o.Precision)
		if err != nil {
			return nil, fmt.Errorf("%w: --precision: %v", errUsage, err)
		}
		src.Precision = p
	}
	m, err := mae.Open(e.ctx, src)
	if err == nil {
		setMemoryLimit()
	}
	return m, err
}

func (e *env) modelSource(o *Options, needDecoder bool) mae.Source {
	s := o.Model
	s.NeedDecoder = needDecoder
	return s
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
