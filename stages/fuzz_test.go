package stages

import (
	"errors"
	"image"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode: arbitrary bytes must never panic or hang Decode/Resize, and a
// successful decode must be an opaque NRGBA of the reported size.
// Seeds: every fixture in testdata/odd, refused and cases plus the corpus in
// testdata/fuzz.
// Run longer locally with: go test ./stages -run '^$' -fuzz FuzzDecode -fuzztime 5m
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/odd/*")
	for _, dir := range []string{"refused", "cases"} {
		more, _ := filepath.Glob("testdata/" + dir + "/*")
		files = append(files, more...)
	}
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	// A small pixel budget keeps memory bounded while fuzzing headers.
	p := Preprocess{Size: 16, Mode: Squash, MaxPixels: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, w, h, err := p.Decode(data)
		// Decode turns a decoder's panic into an error (one bad image must
		// not end a run), but a panic is still a bug the fuzzer is here to
		// find.
		var pe *PanicError
		if errors.As(err, &pe) {
			t.Fatalf("decoder panicked: %v\n%s", pe.Value, pe.Stack)
		}
		if err != nil {
			return
		}
		n, ok := img.(*image.NRGBA)
		if !ok || n.Rect != image.Rect(0, 0, w, h) {
			t.Fatalf("decoded %T bounds %v, reported %dx%d", img, img.Bounds(), w, h)
		}
		for i := 3; i < len(n.Pix); i += 4 {
			if n.Pix[i] != 255 {
				t.Fatalf("alpha %d at byte %d: not composited", n.Pix[i], i)
			}
		}
		out, err := p.Resize(img)
		if err != nil {
			t.Fatal(err)
		}
		if out.Bounds() != image.Rect(0, 0, 16, 16) {
			t.Fatalf("resized bounds %v", out.Bounds())
		}
		dst := make([]float32, 3*16*16)
		Normalize(dst, out)
	})
}
