package main

import (
	"fmt"
	"image"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/maeembed/maeembed/sinks"
)

// cliPanicMagic starts the inputs of a test-only image format whose
// header is a fine 40×30 and whose pixel decoder panics, as a decoder
// (ours or a library's) does on malformed data it does not guard against.
const cliPanicMagic = "\x00maeembed-cli-test-panic\x00"

func init() {
	image.RegisterFormat("clipanic", cliPanicMagic,
		func(io.Reader) (image.Image, error) {
			var rows [][]byte
			return nil, fmt.Errorf("row of %d bytes", len(rows[7]))
		},
		func(io.Reader) (image.Config, error) {
			return image.Config{ColorModel: color.NRGBAModel, Width: 40, Height: 30}, nil
		})
}

// A decoder that panics on one input of `embed` (a .bmp whose decoder
// indexes past its data) fails that input only: the run exits 0 as runs
// with bad inputs do, the good photo is embedded, the bad input is one
// error row of stage decode saying the decoder failed on malformed data,
// the stack is logged once with the id, and a rerun resumes without
// dying on it again.
func TestE2EDecoderPanicIsAnErrorRow(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in")
	copyFile(t, filepath.Join(fixtures, "tiny32", "images", "img_000.png"), filepath.Join(in, "good.png"))
	if err := os.WriteFile(filepath.Join(in, "bad.bmp"), []byte(cliPanicMagic+"malformed"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, in}
	stderr := runCounted(t, summary{1, 1, 0}, args...)
	if n := strings.Count(stderr, "stack="); n != 1 || !strings.Contains(stderr, "id=bad.bmp") {
		t.Errorf("want the decoder's stack logged once with the id, got %d:\n%s", n, stderr)
	}

	done, err := sinks.ReadDone(out)
	if err != nil {
		t.Fatal(err)
	}
	if !done.Output["good.png"] || len(done.Output) != 1 {
		t.Errorf("embedded %v, want good.png only", done.Output)
	}
	tbl, _, err := sinks.ReadParquet(filepath.Join(out, "errors", "part-00000.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	ids := tbl.Column(0).Data().Chunk(0).(*array.String)
	stage := tbl.Column(1).Data().Chunk(0).(*array.String)
	msg := tbl.Column(2).Data().Chunk(0).(*array.String)
	want := "decode clipanic: decoder failed on malformed data (panic: runtime error: index out of range [7] with length 0)"
	if ids.Len() != 1 || ids.Value(0) != "bad.bmp" || stage.Value(0) != "decode" || msg.Value(0) != want {
		t.Fatalf("error rows: %d, first %q stage %q error %q\nwant bad.bmp, decode, %q", ids.Len(), ids.Value(0), stage.Value(0), msg.Value(0), want)
	}

	// The rerun finds everything done.
	runCounted(t, summary{0, 0, 2}, args...)
}
