package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/pipeline"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
)

// Dataset is the training set held in memory as 8-bit RGB: with
// augmentation each image shrunk so its shorter side is at most
// ShrinkFactor·S (crops are cut from it), without augmentation the S×S
// evaluation transform of the preprocessing (--resize).
type Dataset struct {
	IDs     []string
	Images  []*image.NRGBA
	Size    int
	Augment bool

	free []func() // the memory budget the images hold
}

// Free gives the memory budget the images hold back (LoadDataset keeps
// them under it); the dataset must not be used afterwards.
func (d *Dataset) Free() {
	for _, f := range d.free {
		f()
	}
	d.free, d.Images = nil, nil
}

// ShrinkFactor bounds the kept resolution of augmented training images: the
// smallest crop (20% of the area) of a 2·S copy still has about S pixels a
// side, so nothing visible is lost and a folder of 4K wallpapers fits in
// memory.
const ShrinkFactor = 2

// Fingerprint identifies the image list (ids in order), so a resumed run
// can tell it is reading the same data.
func (d *Dataset) Fingerprint() string {
	h := sha256.New()
	for _, id := range d.IDs {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Failure is an input that could not be used, with the stage that failed
// (read, decode, resize) as embed's error rows name it.
type Failure struct {
	ID, Stage string
	Err       error
}

// LoadDataset reads every item of src and decodes and prepares it with pre
// (pre.Size is the model's image size) on the engine's read → preprocess
// stages (workers goroutines), keeping the usable images in the source's
// order. Each unusable input is an error row of errw (nil: none), as embed
// writes them, and is passed to onFail (it may be nil). The engine closes
// errw. A dataset with no usable image is an error.
//
// Under pre.Budget the reads and decodes wait for their share as in every
// run, and the kept images are held in the budget (stages.Budget.Keep)
// until Free: a training set that does not fit (beside room to decode the
// largest image) ends the load with an error that says so, naming the
// images kept, rather than growing past the budget.
// errNoUsableImage is LoadDataset's error for inputs that were all read
// and none of which is a usable image: every error row was written.
var errNoUsableImage = errors.New("no usable training image")

func LoadDataset(ctx context.Context, src sources.Source, pre stages.Preprocess, augment bool, workers int,
	errw sinks.Writer[sinks.ErrorRow], onFail func(Failure)) (*Dataset, error) {
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	d := &Dataset{Size: pre.Size, Augment: augment}
	c := &collector{d: d, budget: pre.Budget}
	var failed atomic.Int64
	eng := engine.New(engine.Config{Prepare: preparer{pre, augment}, ImageSize: pre.Size, BatchSize: 2 * workers, Workers: workers,
		Budget: pre.Budget, Errors: errw,
		OnFailure: func(im *engine.Image) {
			failed.Add(1)
			if onFail != nil {
				onFail(Failure{ID: im.Item.ID, Stage: im.Stage, Err: im.Err})
			}
		}}, c, c)
	if err := eng.Run(ctx, src); err != nil {
		d.Free()
		return nil, fmt.Errorf("read training inputs: %w", err)
	}
	if len(d.Images) == 0 {
		return nil, fmt.Errorf("%w among %s", errNoUsableImage, counted(failed.Load(), "input", "inputs"))
	}
	return d, nil
}

// preparer is the engine's preprocessing of a training set: decoded and,
// with augmentation, shrunk to ShrinkFactor·S (crops are cut from it every
// epoch), else the S×S evaluation transform.
type preparer struct {
	pre     stages.Preprocess
	augment bool
}

func (p preparer) PrepareContext(ctx context.Context, data []byte) (*image.NRGBA, int, int, error) {
	if p.augment {
		// Under the budget with the shrink's buffers, not Resize's.
		img, w, h, err := p.pre.DecodeShrinkContext(ctx, data, ShrinkFactor*p.pre.Size)
		if err != nil {
			return nil, 0, 0, &stages.Error{Stage: "decode", Err: err}
		}
		return img, w, h, nil
	}
	img, w, h, release, err := p.pre.DecodeContext(ctx, data)
	if err != nil {
		return nil, 0, 0, &stages.Error{Stage: "decode", Err: err}
	}
	defer release()
	out, err := p.pre.Resize(img)
	if err != nil {
		return nil, w, h, &stages.Error{Stage: "resize", Err: err}
	}
	return out.(*image.NRGBA), w, h, nil
}

// collector is the engine's model stage and output of a training set: it
// keeps each prepared image, in input order (the model stage is ordered),
// and acks its input, which the set now holds.
type collector struct {
	d      *Dataset
	budget *stages.Budget
}

func (c *collector) Run(imgs []*engine.Image) (struct{}, error) {
	for _, im := range imgs {
		free, err := c.budget.Keep(context.Background(), int64(cap(im.Decoded.Pix)))
		if err != nil {
			return struct{}{}, pipeline.Fatal(fmt.Errorf("the training set does not fit in the memory budget (--memory-budget) after %d images (%s kept); raise it or train on fewer images: %w",
				len(c.d.Images), stages.FormatBytes(c.budget.Kept()), err))
		}
		c.d.free = append(c.d.free, free)
		c.d.IDs = append(c.d.IDs, im.Item.ID)
		c.d.Images = append(c.d.Images, im.Decoded)
		im.Decoded = nil
	}
	return struct{}{}, nil
}

func (c *collector) Release(struct{}) {}

func (c *collector) Write(imgs []*engine.Image, _ struct{}) error {
	for _, im := range imgs {
		im.Item.Ack(nil)
	}
	return nil
}

func (c *collector) Flush() error { return nil }
func (c *collector) Close() error { return nil }
func (c *collector) Abort() error { return nil }

// Stream tags separate the random streams derived from the seed.
const (
	streamShuffle = 0x5348554646 // "SHUFF"
	streamAugment = 0x4155474d   // "AUGM"
)

// EpochOrder is the seeded shuffle of an epoch: a permutation of n that
// depends only on (seed, epoch), so a resumed run sees the same order.
func EpochOrder(seed uint64, epoch, n int) []int {
	r := rand.New(rand.NewPCG(seed^streamShuffle, uint64(epoch)))
	return r.Perm(n)
}

// Batcher fills batches: images chosen by the epoch order, augmented with a
// random stream per (seed, sample), normalised and patchified, with the
// mask noise of each sample. Sample k is the k-th image a run has consumed
// (iteration·batch + slot), so everything is a function of the seed and the
// position in the run.
type Batcher struct {
	Data  *Dataset
	Cfg   mae.Config
	Seed  uint64
	Batch int

	chw     []float32 // per slot scratch
	workers []fillWorker
}

// fillWorker is the reusable state of one of Fill's goroutines: a random
// source reseeded for each sample, which gives the same stream as a new
// rand.NewPCG with that seed would.
type fillWorker struct {
	pcg *rand.PCG
	rng *rand.Rand
}

// Fill writes the patches [n·L × p·p·3] and noise [n·L] of the batch made of
// images order[first:first+n], whose first sample number is sample. It runs
// one goroutine per core (not per image), each taking the next slot.
func (b *Batcher) Fill(patches, noise []float32, order []int, first int, sample int64) {
	c := b.Cfg
	n, s := b.Batch, c.ImageSize
	if len(b.chw) != n*3*s*s {
		b.chw = make([]float32, n*3*s*s)
	}
	nw := min(runtime.GOMAXPROCS(0), n)
	for len(b.workers) < nw {
		pcg := rand.NewPCG(0, 0)
		b.workers = append(b.workers, fillWorker{pcg: pcg, rng: rand.New(pcg)})
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(nw)
	for w := range nw {
		go func(fw *fillWorker) {
			defer wg.Done()
			for k := int(next.Add(1)) - 1; k < n; k = int(next.Add(1)) - 1 {
				b.fillSlot(fw, patches, noise, order[first+k], k, sample)
			}
		}(&b.workers[w])
	}
	wg.Wait()
}

// fillSlot writes slot k of the batch: image idx, sample number sample+k.
func (b *Batcher) fillSlot(fw *fillWorker, patches, noise []float32, idx, k int, sample int64) {
	c := b.Cfg
	l, pd, s := c.NumPatches(), c.PatchDim(), c.ImageSize
	img := b.Data.Images[idx]
	chw := b.chw[k*3*s*s : (k+1)*3*s*s]
	if b.Data.Augment {
		fw.pcg.Seed(b.Seed^streamAugment, uint64(sample)+uint64(k))
		crop := stages.RandomResizedCropRect(img.Rect.Dx(), img.Rect.Dy(), stages.CropScale, stages.CropRatio, fw.rng)
		stages.ResizedCropTensor(chw, img, crop, s, fw.rng.Float64() < 0.5)
	} else {
		stages.Normalize(chw, img)
	}
	mae.Patchify(patches[k*l*pd:(k+1)*l*pd], chw, 1, s, c.PatchSize)
	mae.NoiseRow(noise[k*l:(k+1)*l], b.Seed, sample+int64(k))
}
