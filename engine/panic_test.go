package engine

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/maeembed/maeembed/internal/logtest"
)

// panicMagic starts the inputs of a test-only image format whose header
// is a fine 32×32 and whose pixel decoder panics: any decoder, ours or a
// library's, meeting malformed data it does not guard against.
const panicMagic = "\x00maeembed-engine-test-panic\x00"

func init() {
	image.RegisterFormat("enginepanic", panicMagic,
		func(io.Reader) (image.Image, error) { panic("test decoder: malformed data") },
		func(io.Reader) (image.Config, error) {
			return image.Config{ColorModel: color.NRGBAModel, Width: 32, Height: 32}, nil
		})
}

// failures records the failed images of a run (Config.OnFailure).
type failures struct {
	mu    sync.Mutex
	stage map[string]string
	err   map[string]string
}

func (f *failures) on(im *Image) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stage[im.Item.ID], f.err[im.Item.ID] = im.Stage, im.Err.Error()
}

// captureLog sends slog's default logger to a buffer for the test.
func captureLog(t *testing.T) *logtest.Buffer {
	var buf logtest.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

// A decoder that panics on one input fails that input only: the run goes
// on and ends without error, the good images are published, and the bad
// one is an error row of stage decode saying the decoder failed on
// malformed data, acked once; its stack is logged once, with its id.
func TestDecoderPanicIsAnErrorRow(t *testing.T) {
	in, good, bad := inputs(t, 6)
	boom := "boom.png"
	if err := os.WriteFile(filepath.Join(in, boom), []byte(panicMagic+"pixels"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := captureLog(t)
	panicStacksLogged.Store(0)
	out := t.TempDir()
	e, src, rec := embedRun(t, in, out, 4, 5, false)
	fails := &failures{stage: map[string]string{}, err: map[string]string{}}
	e.cfg.OnFailure = fails.on
	if err := e.Run(context.Background(), src); err != nil {
		t.Fatalf("run: %v", err)
	}
	pub := done(t, out)
	for _, id := range append(append([]string{boom}, good...), bad...) {
		if c := rec.get(id); len(c) != 1 || c[0] != nil {
			t.Errorf("%s: acks %v, want one nil", id, c)
		}
		if !pub[id] {
			t.Errorf("%s not published", id)
		}
	}
	if c := e.Counts(); c.Written != int64(len(good)) || c.Failed != int64(len(bad)+1) {
		t.Errorf("counts %+v, want %d written, %d failed", c, len(good), len(bad)+1)
	}
	want := "decode enginepanic: decoder failed on malformed data (panic: test decoder: malformed data)"
	if fails.stage[boom] != "decode" || fails.err[boom] != want {
		t.Errorf("%s: stage %q, error %q\nwant stage decode, %q", boom, fails.stage[boom], fails.err[boom], want)
	}
	logged := log.String()
	if n := strings.Count(logged, "stack="); n != 1 || !strings.Contains(logged, "id="+boom) || !strings.Contains(logged, "stages.") {
		t.Errorf("want one record with the id and the decoder's stack, got %d stacks:\n%s", n, logged)
	}
}

// Of many inputs whose decoder panics, each is an error row, and each
// panic is logged, but only the first maxPanicStacks with their stack (the
// last of them saying that further stacks are not logged): a dataset of
// malformed files does not flood the log.
func TestDecoderPanicStacksLoggedForTheFirstFew(t *testing.T) {
	in, good, bad := inputs(t, 3)
	var booms []string
	for i := range maxPanicStacks + 3 {
		id := fmt.Sprintf("boom_%d.png", i)
		if err := os.WriteFile(filepath.Join(in, id), []byte(panicMagic+"pixels"), 0o644); err != nil {
			t.Fatal(err)
		}
		booms = append(booms, id)
	}
	log := captureLog(t)
	panicStacksLogged.Store(0)
	out := t.TempDir()
	e, src, _ := embedRun(t, in, out, 4, 5, false)
	fails := &failures{stage: map[string]string{}, err: map[string]string{}}
	e.cfg.OnFailure = fails.on
	if err := e.Run(context.Background(), src); err != nil {
		t.Fatalf("run: %v", err)
	}
	if c := e.Counts(); c.Written != int64(len(good)) || c.Failed != int64(len(bad)+len(booms)) {
		t.Errorf("counts %+v, want %d written, %d failed", c, len(good), len(bad)+len(booms))
	}
	for _, id := range booms {
		if fails.stage[id] != "decode" || !strings.Contains(fails.err[id], "decoder failed on malformed data") {
			t.Errorf("%s: stage %q, error %q, want an error row of stage decode", id, fails.stage[id], fails.err[id])
		}
	}
	logged := log.String()
	if n := strings.Count(logged, "preprocessing panicked on an input"); n != len(booms) {
		t.Errorf("%d panics logged, want %d:\n%s", n, len(booms), logged)
	}
	if n := strings.Count(logged, "stack="); n != maxPanicStacks {
		t.Errorf("%d stacks logged, want %d:\n%s", n, maxPanicStacks, logged)
	}
	if n := strings.Count(logged, "further panics in this process are not logged"); n != 1 {
		t.Errorf("the note that further stacks are not logged appears %d times, want once:\n%s", n, logged)
	}
}

// panicky is a Preprocessor that panics on one input, outside any
// decoder: the engine's own recover makes it that input's error row.
type panicky struct{ Preprocessor }

func (p panicky) TensorContext(ctx context.Context, dst []float32, data []byte) (int, int, error) {
	if bytes.HasPrefix(data, []byte("crash")) {
		var m map[string]int
		m["x"]++ // assignment to entry in nil map
	}
	return p.Preprocessor.TensorContext(ctx, dst, data)
}

// A panic outside the decoders (a Preprocessor of a caller's own, an
// augmentation) is the input's error row too, stage preprocess.
func TestPreprocessorPanicIsAnErrorRow(t *testing.T) {
	in, good, bad := inputs(t, 6)
	crash := "crash.png"
	if err := os.WriteFile(filepath.Join(in, crash), []byte("crash"), 0o644); err != nil {
		t.Fatal(err)
	}
	captureLog(t)
	out := t.TempDir()
	e, src, rec := embedRun(t, in, out, 4, 5, false)
	e.cfg.Preprocess = panicky{e.cfg.Preprocess}
	fails := &failures{stage: map[string]string{}, err: map[string]string{}}
	e.cfg.OnFailure = fails.on
	if err := e.Run(context.Background(), src); err != nil {
		t.Fatalf("run: %v", err)
	}
	if c := rec.get(crash); len(c) != 1 || c[0] != nil || !done(t, out)[crash] {
		t.Errorf("%s: acks %v, want one nil, and its error row published", crash, c)
	}
	if c := e.Counts(); c.Written != int64(len(good)) || c.Failed != int64(len(bad)+1) {
		t.Errorf("counts %+v, want %d written, %d failed", c, len(good), len(bad)+1)
	}
	if fails.stage[crash] != "preprocess" || !strings.Contains(fails.err[crash], "preprocessing failed on this input (panic: assignment to entry in nil map)") {
		t.Errorf("%s: stage %q, error %q", crash, fails.stage[crash], fails.err[crash])
	}
}
