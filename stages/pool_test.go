package stages

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
)

func drainPools() {
	for _, pp := range []*pixPool{&decodedPool, &tmpPool, &outPool} {
		for pp.p.Get() != nil {
		}
	}
}

// poisonPools replaces the pools' contents with large buffers of garbage, so
// a code path that reads a pooled pixel before writing it changes the tensor.
func poisonPools() {
	drainPools()
	for _, pp := range []*pixPool{&decodedPool, &tmpPool, &outPool} {
		for i := 0; i < 4; i++ {
			b := make([]byte, 1<<16)
			for j := range b {
				b[j] = 0x5a
			}
			pp.p.Put(&b)
		}
	}
}

// TestTensorPooledBuffersMatchFresh: Tensor gives the same floats whether its
// buffers are new or recycled dirty ones, across every decode path (YCbCr,
// gray, palette with transparency, GIF frame on a larger screen, EXIF
// rotation, CMYK, 16-bit) and every resize mode, including none, where the
// resized image is the decoded one.
func TestTensorPooledBuffersMatchFresh(t *testing.T) {
	debug.SetGCPercent(-1) // keep pooled buffers for the duration
	defer debug.SetGCPercent(100)
	files := []string{"animated.gif", "cmyk.jpg", "exif-orientation-6.jpg", "gray.png", "palette-transparent.png",
		"progressive.jpg", "quadrants.bmp", "quadrants.webp", "rgb16.png", "rgba-half.png", "sub-420.jpg", "sub-444.jpg"}
	cfgs := []Preprocess{{Size: 16, Mode: CenterCrop}, {Size: 20, Mode: Squash}}
	inputs := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join("testdata/odd", f))
		if err != nil {
			t.Fatal(err)
		}
		inputs[f] = data
	}
	// A square image: resize none and squash to its own size return the
	// decoded buffer itself (or its copy), which must go back to a pool once.
	sq := image.NewNRGBA(image.Rect(0, 0, 16, 16))
	for i := range sq.Pix {
		sq.Pix[i] = uint8(i * 7)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, sq); err != nil {
		t.Fatal(err)
	}
	inputs["square.png"] = buf.Bytes()
	// A GIF frame smaller than its screen: the only path that pre-fills.
	pal := color.Palette{color.NRGBA{0, 0, 255, 255}, color.NRGBA{0, 0, 0, 0}}
	var g bytes.Buffer
	if err := gif.EncodeAll(&g, &gif.GIF{Image: []*image.Paletted{image.NewPaletted(image.Rect(10, 5, 20, 15), pal)},
		Delay: []int{0}, Config: image.Config{ColorModel: pal, Width: 40, Height: 30}}); err != nil {
		t.Fatal(err)
	}
	inputs["small-frame.gif"] = g.Bytes()
	files = append(files, "square.png", "small-frame.gif")
	for _, f := range files {
		data := inputs[f]
		ps := cfgs
		if f == "square.png" {
			ps = append(ps, Preprocess{Size: 16, Mode: NoResize}, Preprocess{Size: 16, Mode: Squash})
		}
		for _, p := range ps {
			n := 3 * p.Size * p.Size
			drainPools()
			want := make([]float32, n)
			if _, _, err := p.Tensor(want, data); err != nil {
				t.Fatalf("%s %v: %v", f, p, err)
			}
			for round := 0; round < 3; round++ {
				poisonPools()
				got := make([]float32, n)
				if _, _, err := p.Tensor(got, data); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s %v round %d: tensor from pooled buffers differs", f, p, round)
				}
			}
		}
	}
}

// TestTensorRecyclesBuffers: once warm, a Tensor call takes every
// intermediate (the RGB copy, the horizontal pass, the S×S output) from its
// pool instead of allocating it (together ~2.7× the decoder's own image
// before pooling). It counts the pools' misses, not process-wide
// allocations, on one P with the collector off, so a loaded machine cannot
// change the result; BenchmarkTensorPooled reports the bytes per call.
func TestTensorRecyclesBuffers(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	// One P: sync.Pool keeps a per-P private slot, and a goroutine moved to
	// another P between put and get would miss it.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	data := recycleInput(t)
	p := Preprocess{Size: 224, Mode: CenterCrop}
	dst := make([]float32, 3*224*224)
	if _, _, err := p.Tensor(dst, data); err != nil { // warm the pools
		t.Fatal(err)
	}
	pools := map[string]*pixPool{"decoded": &decodedPool, "tmp": &tmpPool, "out": &outPool}
	before := map[string]int64{}
	for name, pp := range pools {
		before[name] = pp.misses.Load()
	}
	for i := 0; i < 5; i++ {
		if _, _, err := p.Tensor(dst, data); err != nil {
			t.Fatal(err)
		}
	}
	for name, pp := range pools {
		if m := pp.misses.Load() - before[name]; m != 0 {
			t.Errorf("%s pool: %d new buffers in 5 warm Tensor calls, want 0: intermediates not recycled", name, m)
		}
	}
}

// recycleInput is an uncompressed 512×384 PNG: decoding it allocates only
// the decoder's own image.
func recycleInput(t testing.TB) []byte {
	const w, h = 512, 384
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i*13) | 0x80
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.NoCompression}).Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkTensorPooled: bytes per warm Tensor call (-benchmem), about the
// decoder's own 512×384 NRGBA (786 KB); before pooling ~2.7× that.
// go test ./stages -run '^$' -bench TensorPooled -benchmem
func BenchmarkTensorPooled(b *testing.B) {
	data := recycleInput(b)
	p := Preprocess{Size: 224, Mode: CenterCrop}
	dst := make([]float32, 3*224*224)
	if _, _, err := p.Tensor(dst, data); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := p.Tensor(dst, data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTensorConcurrentPooling: preprocess workers share the pools; images of
// different sizes run at once and each tensor still equals its sequential
// result (run with -race).
func TestTensorConcurrentPooling(t *testing.T) {
	files := []string{"sub-420.jpg", "exif-orientation-6.jpg", "palette-transparent.png", "rgb16.png", "quadrants.webp"}
	p := Preprocess{Size: 16, Mode: CenterCrop}
	want := make([][]float32, len(files))
	inputs := make([][]byte, len(files))
	for i, f := range files {
		data, err := os.ReadFile(filepath.Join("testdata/odd", f))
		if err != nil {
			t.Fatal(err)
		}
		inputs[i] = data
		want[i] = make([]float32, 3*16*16)
		if _, _, err := p.Tensor(want[i], data); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		go func() {
			got := make([]float32, 3*16*16)
			for it := 0; it < 50; it++ {
				i := (g + it) % len(files)
				if _, _, err := p.Tensor(got, inputs[i]); err != nil {
					errs <- err.Error()
					return
				}
				if !slices.Equal(got, want[i]) {
					errs <- files[i] + ": tensor differs under concurrent pooling"
					return
				}
			}
			errs <- ""
		}()
	}
	for g := 0; g < 4; g++ {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}
