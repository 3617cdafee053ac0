package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/maeembed/maeembed/mae"
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

// LoadDataset reads every item of src, decodes and prepares it with pre
// (pre.Size is the model's image size) on workers goroutines, and keeps the
// usable ones in the source's order. Each unusable input is passed to
// onFail (it may be nil) and skipped. A dataset with no usable image is an
// error.
func LoadDataset(ctx context.Context, src sources.Source, pre stages.Preprocess, augment bool, workers int, onFail func(Failure)) (*Dataset, error) {
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	type job struct {
		i  int
		it sources.Item
	}
	type result struct {
		img  *image.NRGBA
		fail *Failure
	}
	var (
		mu      sync.Mutex
		results []result
		ids     []string
		wg      sync.WaitGroup
	)
	jobs := make(chan job, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				img, fail := prepare(j.it, pre, augment)
				j.it.Ack(nil)
				mu.Lock()
				results[j.i] = result{img, fail}
				mu.Unlock()
			}
		}()
	}
	var readErr error
	for i := 0; ; i++ {
		it, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		mu.Lock()
		results = append(results, result{})
		ids = append(ids, it.ID)
		mu.Unlock()
		jobs <- job{i, it}
	}
	close(jobs)
	wg.Wait()
	if readErr != nil {
		return nil, fmt.Errorf("read training inputs: %w", readErr)
	}
	d := &Dataset{Size: pre.Size, Augment: augment}
	for i, r := range results {
		if r.fail != nil {
			if onFail != nil {
				onFail(*r.fail)
			}
			continue
		}
		d.IDs = append(d.IDs, ids[i])
		d.Images = append(d.Images, r.img)
	}
	if len(d.Images) == 0 {
		return nil, fmt.Errorf("no usable training image among %d input(s)", len(results))
	}
	return d, nil
}

func prepare(it sources.Item, pre stages.Preprocess, augment bool) (*image.NRGBA, *Failure) {
	if it.Err != nil {
		return nil, &Failure{ID: it.ID, Stage: "read", Err: it.Err}
	}
	img, _, _, err := pre.Decode(it.Data)
	if err != nil {
		return nil, &Failure{ID: it.ID, Stage: "decode", Err: err}
	}
	if augment {
		return stages.ShrinkTo(img, ShrinkFactor*pre.Size), nil
	}
	out, err := pre.Resize(img)
	if err != nil {
		return nil, &Failure{ID: it.ID, Stage: "resize", Err: err}
	}
	return out.(*image.NRGBA), nil
}

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

	chw []float32 // per slot scratch
}

// Fill writes the patches [n·L × p·p·3] and noise [n·L] of the batch made of
// images order[first:first+n], whose first sample number is sample.
func (b *Batcher) Fill(patches, noise []float32, order []int, first int, sample int64) {
	c := b.Cfg
	n, l, pd, s := b.Batch, c.NumPatches(), c.PatchDim(), c.ImageSize
	if len(b.chw) != n*3*s*s {
		b.chw = make([]float32, n*3*s*s)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for k := 0; k < n; k++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(k int) {
			defer func() { <-sem; wg.Done() }()
			img := b.Data.Images[order[first+k]]
			if b.Data.Augment {
				r := rand.New(rand.NewPCG(b.Seed^streamAugment, uint64(sample)+uint64(k)))
				crop := stages.RandomResizedCropRect(img.Rect.Dx(), img.Rect.Dy(), stages.CropScale, stages.CropRatio, r)
				img = stages.ResizedCrop(img, crop, s, r.Float64() < 0.5)
			}
			chw := b.chw[k*3*s*s : (k+1)*3*s*s]
			stages.Normalize(chw, img)
			mae.Patchify(patches[k*l*pd:(k+1)*l*pd], chw, 1, s, c.PatchSize)
			mae.NoiseRow(noise[k*l:(k+1)*l], b.Seed, sample+int64(k))
		}(k)
	}
	wg.Wait()
}
