package mae

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/maeembed/maeembed/mae/kernels"
)

// workspace holds the activation buffers of one forward pass, reused from
// batch to batch so the hot path allocates nothing after warm-up. The
// model's own workspace serves whole batches on every core; slots holds
// one per goroutine of a batch split by image (see split), each sized for
// one item (ViT-B: ~29 MB for an embedding item of four images, ~20 MB
// for reconstruction's items, where a batch of 8 needs 59 MB). Buffers of
// 2 MiB and more are on transparent huge pages (kernels.HugeFloats), as
// are the packed weights.
type workspace struct {
	mu    sync.Mutex
	bufs  [numBufs][]float32
	slots []*workspace
	embed embedWork
	recon reconWork
	items splitItems
}

// itemRows is the fewest encoder rows an item of a split batch should
// have: the GEMMs of one item run on one core, and per image they run
// faster on more rows (each item streams every weight from memory once),
// so at batch 8 on 2 cores each core takes one item of 4 images (788
// rows when embedding; the decoder's 197 tokens per image likewise; the
// masked encoder's 50 tokens would allow 16, but Parallel's chunks shrink
// to the images left ÷ cores). Against items of 2, as before, that gained
// 3–10% in embedding and up to 10% in reconstruction with other work
// running beside (medians of alternated runs on 2 cores), 0–4% on a quiet
// machine (the kernels README, "Measured 2026-12-02, session 11"). A core slowed by other work does not hold up the other
// for long: once out of items, the other joins its kernel calls
// (kernels.Parallel). A variable for BenchmarkEmbedItemsAB and
// BenchmarkReconstructItemsAB.
var itemRows = 768

// imagesPerItem is the most images of one item of a split batch whose
// encoder has tokens tokens per image: enough for itemRows rows, and at
// least two. Parallel's chunks shrink to the images left ÷ cores anyway
// (4 at batch 8 on 2 cores).
func imagesPerItem(tokens int) int {
	return max(2, (itemRows+tokens-1)/tokens)
}

const (
	bufX = iota
	bufH
	bufQKV
	bufAttn
	bufMLP
	bufPE
	bufDX
	bufPred
	numBufs
)

// get returns buffer i with n elements (contents left from its last use),
// growing it if needed.
func (w *workspace) get(i, n int) []float32 {
	if cap(w.bufs[i]) < n {
		w.bufs[i] = kernels.HugeFloats(n)
	}
	return w.bufs[i][:n]
}

// useSlots makes sure there are n slot workspaces (before they are used
// concurrently: Do only reads slots).
func (w *workspace) useSlots(n int) {
	for len(w.slots) < n {
		w.slots = append(w.slots, new(workspace))
	}
}

// split is how a batch of n images runs on the cores: the first
// perImage images (n minus n mod cores) as items of up to imagesPerItem
// images, each item's whole forward pass on one goroutine
// (kernels.Parallel: no join per operation, a core slowed by other work
// does fewer items, and cores out of items help finish the last ones),
// the rest as one batch with every kernel call on all cores. With one
// core, or one image, all of it is the batch. Per-row results do not
// depend on the split, but where float32 Linear layers run
// Strassen–Winograd, whose last bits depend on the other rows of a call
// (kernels.Strassen).
func split(n int) (perImage, cores int) {
	cores = runtime.GOMAXPROCS(0)
	if cores < 2 || n < 2 {
		return 0, cores
	}
	return n - n%cores, cores
}

// imageWork is a forward pass over images: images runs images
// b0..b0+n-1 with workspace ws and kernels on th; tokens is the encoder's
// tokens per image (cls included).
type imageWork interface {
	images(ws *workspace, th kernels.Threads, b0, n int)
	tokens() int
}

// splitItems is an imageWork as kernels.Parallel items, each slot with
// its own workspace.
type splitItems struct {
	ws *workspace
	w  imageWork
}

func (s *splitItems) Do(th kernels.Threads, slot, i0, i1 int) {
	s.w.images(s.ws.slots[slot], th, i0, i1-i0)
}

// run runs w over n images as split says (w.mu must be held).
func (w *workspace) run(n int, iw imageWork) {
	k, cores := split(n)
	if k < n {
		iw.images(w, kernels.All, k, n-k)
	}
	if k > 0 {
		w.useSlots(cores)
		w.items = splitItems{ws: w, w: iw}
		kernels.Parallel(k, imagesPerItem(iw.tokens()), cores, &w.items)
		w.items = splitItems{}
	}
}

// Pool selects how token features become one embedding.
type Pool string

const (
	PoolCLS    Pool = "cls"    // the normed cls token
	PoolMean   Pool = "mean"   // mean of the normed patch tokens, cls excluded
	PoolTokens Pool = "tokens" // all normed tokens, cls first
	PoolGlobal Pool = "global" // fine-tuned: fc_norm(mean of un-normed patch tokens)
)

// ParsePool checks a pool name.
func ParsePool(s string) (Pool, error) {
	switch p := Pool(s); p {
	case PoolCLS, PoolMean, PoolTokens, PoolGlobal:
		return p, nil
	}
	return "", fmt.Errorf("unknown pool %q (want cls, mean, tokens or global)", s)
}

// EmbedDim is the length of one image's embedding for a pool.
func (m *Model) EmbedDim(p Pool) int { return m.Config.EmbedDim(p) }

// CheckPool tells whether the weights support a pool.
func (m *Model) CheckPool(p Pool) error {
	return checkPool(p, parts{fcNorm: m.Encoder.FCNorm != nil, norm: m.Encoder.Norm != nil})
}

func checkPool(p Pool, has parts) error {
	switch {
	case p == PoolGlobal && !has.fcNorm:
		return fmt.Errorf("pool global needs a fine-tuned checkpoint with fc_norm")
	case p != PoolGlobal && !has.norm:
		return fmt.Errorf("pool %s needs the encoder norm, which this fine-tuned checkpoint lacks; use --pool global", p)
	}
	return nil
}

// Embed runs the encoder on whole images (no masking, no shuffling) and
// writes one embedding per image into out (n·EmbedDim(pool) values).
// patches is [n, L, p·p·3] as Patchify makes it.
func (m *Model) Embed(out, patches []float32, n int, pool Pool) error {
	if err := m.CheckPool(pool); err != nil {
		return err
	}
	c := m.Config
	l := c.NumPatches()
	if len(patches) != n*l*c.PatchDim() || len(out) != n*m.EmbedDim(pool) {
		return fmt.Errorf("embed: %d images need %d patch values and %d outputs, got %d and %d",
			n, n*l*c.PatchDim(), n*m.EmbedDim(pool), len(patches), len(out))
	}
	m.ws.mu.Lock()
	defer m.ws.mu.Unlock()
	m.ws.embed = embedWork{m: m, out: out, patches: patches, pool: pool}
	m.ws.run(n, &m.ws.embed)
	m.ws.embed = embedWork{}
	return nil
}

// embedWork is Embed's imageWork.
type embedWork struct {
	m            *Model
	out, patches []float32
	pool         Pool
}

func (w *embedWork) images(ws *workspace, th kernels.Threads, b0, n int) {
	w.m.embed(ws, th, w.out, w.patches, b0, n, w.pool)
}

func (w *embedWork) tokens() int { return 1 + w.m.Config.NumPatches() }

// embed writes the embeddings of images b0..b0+n-1 of patches into their
// places in out, with workspace ws and kernels on th.
func (m *Model) embed(ws *workspace, th kernels.Threads, out, patches []float32, b0, n int, pool Pool) {
	c, e := m.Config, m.Encoder
	l, d, ed := c.NumPatches(), c.Dim, m.EmbedDim(pool)
	patches = patches[b0*l*c.PatchDim() : (b0+n)*l*c.PatchDim()]
	out = out[b0*ed : (b0+n)*ed]
	x, t := m.encode(ws, th, patches, n, nil, 0)
	if pool == PoolGlobal {
		for b := 0; b < n; b++ {
			o := out[b*d : (b+1)*d]
			meanRows(o, x[(b*t+1)*d:(b+1)*t*d], l, d)
		}
		e.FCNorm.apply(th, out, out, n)
		return
	}
	e.Norm.apply(th, x, x, n*t)
	for b := 0; b < n; b++ {
		tok := x[b*t*d : (b+1)*t*d]
		switch pool {
		case PoolCLS:
			copy(out[b*d:(b+1)*d], tok[:d])
		case PoolMean:
			meanRows(out[b*d:(b+1)*d], tok[d:], l, d)
		case PoolTokens:
			copy(out[b*t*d:(b+1)*t*d], tok)
		}
	}
}

// encode runs the encoder blocks (not the final norm) on the patches of n
// images, all of them in raster order (ids nil) or per image the keep
// patches of ids [n, L] (Masking.IDsShuffle order), and returns the token
// buffer [n·t, D] (from ws, which the caller owns) and t, the tokens per
// image (cls included).
func (m *Model) encode(ws *workspace, th kernels.Threads, patches []float32, n int, ids []int, keep int) ([]float32, int) {
	c := m.Config
	if ids == nil {
		keep = c.NumPatches()
	}
	t := 1 + keep
	x := ws.get(bufX, n*t*c.Dim)
	m.embedPatches(ws, th, x, patches, n, ids, keep)
	m.runBlocks(ws, th, m.Encoder.Blocks, x, n, t, c.Dim, c.MLPDim)
	return x, t
}

// meanRows averages rows [rows, d] into dst [d], summing in float64 so the
// order of summation does not matter at float32 precision.
func meanRows(dst, rows []float32, n, d int) {
	for j := 0; j < d; j++ {
		var s float64
		for i := 0; i < n; i++ {
			s += float64(rows[i*d+j])
		}
		dst[j] = float32(s / float64(n))
	}
}

// embedPatches writes into x the encoder input: for each image the cls token
// (+ its pos row) then the patch embeddings (+ pos) of the keep patches in
// ids order (all patches in raster order when ids is nil). With ids, only
// the kept patches are embedded (a quarter of them at ratio 0.75).
func (m *Model) embedPatches(ws *workspace, th kernels.Threads, x, patches []float32, n int, ids []int, keep int) {
	c, e := m.Config, m.Encoder
	l, d, pd := c.NumPatches(), c.Dim, c.PatchDim()
	// pe row b·keep+k is the embedding of image b's k-th token.
	pe := ws.get(bufPE, n*keep*d)
	if ids == nil {
		e.PatchEmbed.apply(th, pe, patches, n*l, kernels.ActNone, nil)
	} else {
		kept := ws.get(bufH, n*keep*pd) // free until the blocks run
		for b := 0; b < n; b++ {
			for k := 0; k < keep; k++ {
				id := ids[b*l+k]
				copy(kept[(b*keep+k)*pd:(b*keep+k+1)*pd], patches[(b*l+id)*pd:(b*l+id+1)*pd])
			}
		}
		e.PatchEmbed.apply(th, pe, kept, n*keep, kernels.ActNone, nil)
	}
	pos := paramData(e.PosEmbed)
	cls := paramData(e.ClsToken)
	t := 1 + keep
	for b := 0; b < n; b++ {
		row := x[b*t*d:]
		for j := 0; j < d; j++ {
			row[j] = cls[j] + pos[j]
		}
		for k := 0; k < keep; k++ {
			id := k
			if ids != nil {
				id = ids[b*l+k]
			}
			dst := row[(1+k)*d : (2+k)*d]
			src := pe[(b*keep+k)*d : (b*keep+k+1)*d]
			pr := pos[(1+id)*d : (2+id)*d]
			for j := range dst {
				dst[j] = src[j] + pr[j]
			}
		}
	}
}

// runBlocks applies transformer blocks in place to x [n·t, d].
func (m *Model) runBlocks(ws *workspace, th kernels.Threads, blocks []*Block, x []float32, n, t, d, mlp int) {
	rows := n * t
	h := ws.get(bufH, rows*d)
	qkv := ws.get(bufQKV, rows*3*d)
	att := ws.get(bufAttn, rows*d)
	hid := ws.get(bufMLP, rows*mlp)
	for _, blk := range blocks {
		blk.QKV.applyNormed(th, qkv, h, x, rows, blk.Norm1, kernels.ActNone)
		th.AttentionIn(blk.QKV.packed.Precision(), att, qkv, n, t, blk.Heads, d/blk.Heads)
		blk.Proj.apply(th, x, att, rows, kernels.ActNone, x)
		blk.FC1.applyNormed(th, hid, h, x, rows, blk.Norm2, kernels.ActGELU)
		blk.FC2.apply(th, x, hid, rows, kernels.ActNone, x)
	}
}

// Reconstruction is the result of a masked forward pass.
type Reconstruction struct {
	N, L, Keep int
	Latent     []float32 // [N, 1+Keep, D], normed encoder output
	Pred       []float32 // [N, L, p·p·3], raw decoder output
	Masking    *Masking
	Loss       []float32 // [N], per-image MSE over removed patches; NaN when none was removed (ratio 0)
}

// Images lays the predictions out as CHW images [N,3,S,S] (the reference's
// unpatchify(pred)) and the mask as one value per pixel [N,S,S] (1 =
// removed), into pred and mask (grown if too short), so that nobody else
// redoes the patch arithmetic. S is the model's image size.
func (r *Reconstruction) Images(pred, mask []float32) ([]float32, []float32) {
	pd := len(r.Pred) / (r.N * r.L)
	p := int(math.Round(math.Sqrt(float64(pd / 3))))
	s := p * int(math.Round(math.Sqrt(float64(r.L))))
	pred = grow(pred, r.N*3*s*s)
	mask = grow(mask, r.N*s*s)
	Unpatchify(pred, r.Pred, r.N, s, p)
	MaskPixels(mask, r.Masking.Mask, r.N, s, p)
	return pred, mask
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// Reconstruct masks patches per noise [n, L] (values in [0,1)), encodes the
// kept ones, decodes all and computes the per-image loss. normPix selects
// norm_pix_loss. The result's slices are freshly allocated.
func (m *Model) Reconstruct(patches, noise []float32, n int, ratio float64, normPix bool) (*Reconstruction, error) {
	if m.Decoder == nil {
		return nil, fmt.Errorf("the checkpoint has no decoder: reconstruction needs a model with decoder weights (e.g. mae_visualize_vit_base.pth)")
	}
	if m.Encoder.Norm == nil {
		return nil, fmt.Errorf("reconstruction needs the encoder norm, which this checkpoint lacks")
	}
	c := m.Config
	l, pd := c.NumPatches(), c.PatchDim()
	if err := c.CheckMaskRatio(ratio); err != nil {
		return nil, err
	}
	if len(patches) != n*l*pd {
		return nil, fmt.Errorf("reconstruct: %d images need %d patch values, got %d", n, n*l*pd, len(patches))
	}
	if len(noise) != n*l {
		return nil, fmt.Errorf("mask noise has %d values, want %d×%d", len(noise), n, l)
	}
	keep := c.NumKeep(ratio)
	mk := NewMasking(noise, n, l, keep)
	r := &Reconstruction{N: n, L: l, Keep: keep, Masking: mk, Latent: make([]float32, n*(1+keep)*c.Dim),
		Pred: make([]float32, n*l*pd), Loss: make([]float32, n)}
	ws := &m.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	// Two passes over the batch, each split on its own, so that each
	// sizes its items by its own tokens per image (1+keep, 1+L; see
	// imagesPerItem). The encoder's output waits in r.Latent.
	ws.recon = reconWork{m: m, r: r, patches: patches, normPix: normPix}
	ws.run(n, &ws.recon)
	ws.recon.decoder = true
	ws.run(n, &ws.recon)
	ws.recon = reconWork{}
	return r, nil
}

// reconWork is Reconstruct's imageWork: its encoder pass, or with decoder
// set its decoder pass.
type reconWork struct {
	m       *Model
	r       *Reconstruction
	patches []float32
	normPix bool
	decoder bool
}

func (w *reconWork) images(ws *workspace, th kernels.Threads, b0, n int) {
	if w.decoder {
		w.m.decode(ws, th, w.r, w.patches, b0, n, w.normPix)
		return
	}
	w.m.encodeMasked(ws, th, w.r, w.patches, b0, n)
}

func (w *reconWork) tokens() int {
	if w.decoder {
		return 1 + w.r.L
	}
	return 1 + w.r.Keep
}

// encodeMasked writes r.Latent of images b0..b0+n-1 (r.Masking is set),
// with workspace ws and kernels on th.
func (m *Model) encodeMasked(ws *workspace, th kernels.Threads, r *Reconstruction, patches []float32, b0, n int) {
	c := m.Config
	l, pd := c.NumPatches(), c.PatchDim()
	patches = patches[b0*l*pd : (b0+n)*l*pd]
	x, t := m.encode(ws, th, patches, n, r.Masking.IDsShuffle[b0*l:(b0+n)*l], r.Keep)
	m.Encoder.Norm.apply(th, r.Latent[b0*t*c.Dim:(b0+n)*t*c.Dim], x, n*t)
}

// decode fills r's prediction and loss of images b0..b0+n-1 from their
// r.Latent, with workspace ws and kernels on th.
func (m *Model) decode(ws *workspace, th kernels.Threads, r *Reconstruction, patches []float32, b0, n int, normPix bool) {
	c := m.Config
	l, pd, keep := c.NumPatches(), c.PatchDim(), r.Keep
	t := 1 + keep
	mk := r.Masking
	patches = patches[b0*l*pd : (b0+n)*l*pd]
	x := r.Latent[b0*t*c.Dim : (b0+n)*t*c.Dim]

	dec := m.Decoder
	dd := c.DecDim
	emb := ws.get(bufDX, n*t*dd)
	dec.Embed.apply(th, emb, x, n*t, kernels.ActNone, nil)
	full := ws.get(bufX, n*(1+l)*dd)
	pos := paramData(dec.PosEmbed)
	mt := paramData(dec.MaskToken)
	restore := mk.IDsRestore[b0*l : (b0+n)*l]
	for b := 0; b < n; b++ {
		dst := full[b*(1+l)*dd:]
		src := emb[b*t*dd:]
		for j := 0; j < dd; j++ {
			dst[j] = src[j] + pos[j]
		}
		for i := 0; i < l; i++ {
			o := dst[(1+i)*dd : (2+i)*dd]
			pr := pos[(1+i)*dd : (2+i)*dd]
			if rank := restore[b*l+i]; rank < keep {
				s := src[(1+rank)*dd : (2+rank)*dd]
				for j := range o {
					o[j] = s[j] + pr[j]
				}
			} else {
				for j := range o {
					o[j] = mt[j] + pr[j]
				}
			}
		}
	}
	m.runBlocks(ws, th, dec.Blocks, full, n, 1+l, dd, c.DecMLPDim)
	dec.Norm.apply(th, full, full, n*(1+l))
	pred := ws.get(bufPred, n*(1+l)*pd)
	dec.Pred.apply(th, pred, full, n*(1+l), kernels.ActNone, nil)
	out := r.Pred[b0*l*pd : (b0+n)*l*pd]
	for b := 0; b < n; b++ {
		copy(out[b*l*pd:(b+1)*l*pd], pred[(b*(1+l)+1)*pd:(b+1)*(1+l)*pd])
	}
	Loss(r.Loss[b0:b0+n], out, patches, mk.Mask[b0*l:(b0+n)*l], n, l, pd, normPix)
}
