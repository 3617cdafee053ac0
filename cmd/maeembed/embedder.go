package main

import (
	"fmt"
	"sync"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/sinks"
)

// embedder is the model stage of embed and stream: it patchifies a batch
// of prepared images into a reused buffer and runs the encoder. Outputs come
// from a pool; the write stage returns them with release.
type embedder struct {
	m       *mae.Model
	pool    mae.Pool
	dim     int
	patches []float32
	vals    sync.Pool
}

// openEmbedder loads the model of o for pool, wires it into r and returns
// the stage with the output metadata of the run.
func (e *env) openEmbedder(o *Options, pool mae.Pool, r *imageRun) (*embedder, sinks.Meta, error) {
	m, err := e.openModel(o, false)
	if err != nil {
		return nil, sinks.Meta{}, err
	}
	if err := m.CheckPool(pool); err != nil {
		return nil, sinks.Meta{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	r.pre.Size = m.Config.ImageSize
	c := m.Config
	meta := sinks.Meta{Model: o.Model, Pool: string(pool), Preprocess: r.pre.String(), Version: version, Dim: c.Dim, Precision: m.Precision().String()}
	if pool == mae.PoolTokens {
		meta.Tokens = 1 + c.NumPatches()
	}
	em := &embedder{m: m, pool: pool, dim: m.EmbedDim(pool),
		patches: make([]float32, o.BatchSize*c.NumPatches()*c.PatchDim())}
	em.vals.New = func() any { return make([]float32, o.BatchSize*em.dim) }
	return em, meta, nil
}

// run embeds one batch; out.vals holds len(b)·dim values.
func (em *embedder) run(b []prepared) (output, error) {
	c := em.m.Config
	per := c.NumPatches() * c.PatchDim()
	n := len(b)
	pp := em.patches[:n*per]
	for i, x := range b {
		mae.Patchify(pp[i*per:], x.chw, 1, c.ImageSize, c.PatchSize)
	}
	out := em.vals.Get().([]float32)[:n*em.dim]
	if err := em.m.Embed(out, pp, n, em.pool); err != nil {
		em.release(output{vals: out})
		return output{}, err
	}
	return output{items: b, vals: out}, nil
}

// vector is image i's embedding in out.
func (em *embedder) vector(out output, i int) []float32 { return out.vals[i*em.dim : (i+1)*em.dim] }

// release returns an output's buffer once it has been written.
func (em *embedder) release(out output) { em.vals.Put(out.vals[:cap(out.vals)]) }
