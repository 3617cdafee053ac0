package stages

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// decodeJPEGFile decodes data through the decode stage (Tensor's Decode).
func decodeJPEGFile(data []byte) (*image.NRGBA, error) {
	img, _, _, err := Preprocess{Size: 224, Mode: CenterCrop}.Decode(data)
	if err != nil {
		return nil, err
	}
	return img.(*image.NRGBA), nil
}

// eoiCuts are the ways a file can lack its EOI marker and nothing else.
var eoiCuts = []struct {
	name string
	n    int // bytes cut off the end
}{{"without EOI", 2}, {"EOI cut after its FF", 1}}

// checkWithoutEOI decodes the complete JPEG full with its EOI marker cut
// off (both ways) and cut inside its image data, and checks that the
// decode stage does what PIL does: decodes the first two with the complete
// file's pixels, bit for bit, when pilDecodes, else refuses them, as it
// refuses the truncated ones, saying the file is truncated.
func checkWithoutEOI(t *testing.T, name string, full []byte, pilDecodes bool) {
	t.Helper()
	if !bytes.HasSuffix(full, []byte{0xff, 0xd9}) {
		t.Fatalf("%s does not end with EOI", name)
	}
	want, err := decodeJPEGFile(full)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, c := range eoiCuts {
		got, err := decodeJPEGFile(full[:len(full)-c.n])
		switch {
		case pilDecodes && err != nil:
			t.Errorf("%s %s: %v; PIL decodes it", name, c.name, err)
		case pilDecodes && (got.Rect != want.Rect || !bytes.Equal(got.Pix, want.Pix)):
			t.Errorf("%s %s: pixels differ from the complete file's", name, c.name)
		case !pilDecodes && err == nil:
			t.Errorf("%s %s decodes; PIL refuses it", name, c.name)
		case !pilDecodes && !strings.HasPrefix(err.Error(), "decode jpeg: truncated: the file ends before its EOI marker"):
			t.Errorf("%s %s: %v, want a truncated file's error", name, c.name, err)
		}
	}
	for _, n := range []int{3, 4, 9, 17, 100, len(full) / 2} {
		_, err := decodeJPEGFile(full[:len(full)-n])
		if err == nil || !strings.Contains(err.Error(), "decode jpeg: truncated:") {
			t.Errorf("%s cut %d bytes before its end: %v, want a truncated file's error", name, n, err)
		}
	}
}

// A JPEG whose only defect is a missing EOI marker decodes exactly when PIL
// decodes it (libjpeg's reading, replayed by jpegMissingEOI), with the
// pixels of the complete file; one cut inside its image data stays
// refused. The verdicts are PIL 9.4's (libjpeg-turbo 2.1.5): for the photos
// of examples/photos, only kleiber.jpg decodes without its EOI; never a
// progressive JPEG; with restart markers, gen_eoi.py picked one of each.
func TestDecodeJPEGWithoutEOI(t *testing.T) {
	photos, err := filepath.Glob("../examples/photos/*.jpg")
	if err != nil || len(photos) != 6 {
		t.Fatalf("examples/photos: %v %v", photos, err)
	}
	for _, p := range photos {
		full, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		checkWithoutEOI(t, filepath.Base(p), full, filepath.Base(p) == "kleiber.jpg")
	}
	for name, pilDecodes := range map[string]bool{
		"eoi/progressive.jpg":     false,
		"odd/progressive.jpg":     false,
		"eoi/restart-decodes.jpg": true,
		"eoi/restart-refused.jpg": false,
	} {
		full, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		checkWithoutEOI(t, name, full, pilDecodes)
	}
}

// Files whose EOI is there, or that are not what jpegMissingEOI replays,
// are left to the standard decoder.
func TestJPEGMissingEOIOnlyWhenMissing(t *testing.T) {
	full, err := os.ReadFile("../examples/photos/kleiber.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := jpegMissingEOI(full[:len(full)-2]); !ok {
		t.Fatal("kleiber.jpg without EOI: not repaired")
	}
	for name, data := range map[string][]byte{
		"complete":              full,
		"EOI then junk":         append(bytes.Clone(full), 0, 1, 2),
		"not a JPEG":            []byte("not a jpeg at all"),
		"header only":           full[:200],
		"cut early in its scan": full[:400],
		"progressive":           mustRead(t, "testdata/eoi/progressive.jpg"),
		"cut inside its scans":  full[:len(full)-3],
		// A second SOS of a single-scan file: libjpeg's JERR_EOI_EXPECTED.
		"second scan": append(full[:len(full)-2:len(full)-2], full[jpegSegment(t, full, 0xda):len(full)-2]...),
	} {
		if tail, ok := jpegMissingEOI(data); ok {
			t.Errorf("%s: repaired with %x", name, tail)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b, []byte{0xff, 0xd9})
}

// Against PIL itself, where it is installed (CI): the photos, and crops of
// them re-encoded at several qualities, in colour and grey, and enlarged
// past 64 KiB (which PIL hands to libjpeg in 64 KiB pieces), each without
// its EOI, or cut short; the decode stage decodes exactly the files PIL
// decodes, with the complete file's pixels.
func TestJPEGWithoutEOIAsPIL(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import PIL").Run(); err != nil {
		if os.Getenv("MAEEMBED_REQUIRE_TOOLS") == "1" {
			t.Fatalf("PIL missing (apt-get install -y python3-pil): %v", err)
		}
		t.Skipf("PIL missing: %v", err)
	}
	photos, _ := filepath.Glob("../examples/photos/*.jpg")
	dir := t.TempDir()
	full := map[string][]byte{} // file → the complete JPEG it was cut from
	var files []string
	for _, p := range photos {
		orig, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		src, err := jpeg.Decode(bytes.NewReader(orig))
		if err != nil {
			t.Fatal(err)
		}
		bases := map[string][]byte{"orig": orig}
		encode := func(name string, m image.Image, q int) {
			var buf bytes.Buffer
			if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: q}); err != nil {
				t.Fatal(err)
			}
			bases[name] = buf.Bytes()
		}
		encode("x2", scaled(src, src.Bounds(), 2, false), 90)
		for i := 0; i < 12; i++ {
			// Small crops: cheap, and each its own bit layout.
			r := image.Rect(0, 0, 96+8*i, 64+5*i).Add(image.Pt(29*i, 17*i))
			encode(fmt.Sprintf("crop%d", i), scaled(src, r, 1, i%3 == 2), 30+5*i)
		}
		for k, b := range bases {
			for _, n := range []int{1, 2, 3} {
				f := fmt.Sprintf("%s-%s-cut%d.jpg", filepath.Base(p), k, n)
				if err := os.WriteFile(filepath.Join(dir, f), b[:len(b)-n], 0o644); err != nil {
					t.Fatal(err)
				}
				files, full[f] = append(files, f), b
			}
		}
	}
	// Markers after the scan of kleiber.jpg, which decodes without its EOI:
	// libjpeg refuses a second SOS or a SOF there, and skips COM, APPn and
	// RSTn.
	k, err := os.ReadFile("../examples/photos/kleiber.jpg")
	if err != nil {
		t.Fatal(err)
	}
	seg := func(m byte) []byte {
		i := jpegSegment(t, k, m)
		return k[i : i+2+int(binary.BigEndian.Uint16(k[i+2:]))]
	}
	for name, after := range map[string][]byte{
		"second-scan":  k[jpegSegment(t, k, 0xda) : len(k)-2],
		"sos-segment":  seg(0xda),
		"sof":          seg(0xc0),
		"com":          []byte("\xff\xfe\x00\x07hello"),
		"app1":         []byte("\xff\xe1\x00\x0aExif\x00\x00MM"),
		"rst0-com":     []byte("\xff\xd0\xff\xfe\x00\x04\xff\xda"),
		"com-then-sos": append([]byte("\xff\xfe\x00\x04ab"), seg(0xda)...),
	} {
		for _, end := range []string{"", "\xff"} {
			f := "kleiber-" + name + fmt.Sprintf("-%d.jpg", len(end))
			b := append(append(k[:len(k)-2:len(k)-2], after...), end...)
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
			files, full[f] = append(files, f), k
		}
	}
	script := `import sys
from PIL import Image
for f in sys.argv[2:]:
    try:
        Image.open(sys.argv[1] + "/" + f).load()
        print("ok")
    except OSError:
        print("refused")
`
	out, err := exec.Command(py, append([]string{"-c", script, dir}, files...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	verdicts := strings.Fields(string(out))
	if len(verdicts) != len(files) {
		t.Fatalf("%d verdicts for %d files", len(verdicts), len(files))
	}
	decoded := 0
	for i, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeJPEGFile(data)
		if (err == nil) != (verdicts[i] == "ok") {
			t.Errorf("%s: PIL %s, decode stage: %v", f, verdicts[i], err)
			continue
		}
		if err != nil {
			continue
		}
		decoded++
		want, err := decodeJPEGFile(full[f])
		if err != nil || !bytes.Equal(got.Pix, want.Pix) {
			t.Errorf("%s: pixels differ from the complete file's (%v)", f, err)
		}
	}
	t.Logf("%d of %d files decoded, as by PIL", decoded, len(files))
}

// jpegSegment is the offset of the first marker m in the JPEG b, walking
// its segments (not their contents) from SOI.
func jpegSegment(t testing.TB, b []byte, m byte) int {
	t.Helper()
	for i := 2; i+4 <= len(b) && b[i] == 0xff; i += 2 + int(binary.BigEndian.Uint16(b[i+2:])) {
		if b[i+1] == m {
			return i
		}
	}
	t.Fatalf("no marker %x", m)
	return 0
}

// scaled is the part b of src enlarged scale times (nearest), in grey
// when gray.
func scaled(src image.Image, b image.Rectangle, scale int, gray bool) image.Image {
	r := image.Rect(0, 0, b.Dx()*scale, b.Dy()*scale)
	var dst interface {
		image.Image
		Set(x, y int, c color.Color)
	}
	if gray {
		dst = image.NewGray(r)
	} else {
		dst = image.NewRGBA(r)
	}
	for y := 0; y < r.Dy(); y++ {
		for x := 0; x < r.Dx(); x++ {
			dst.Set(x, y, src.At(b.Min.X+x/scale, b.Min.Y+y/scale))
		}
	}
	return dst
}

// FuzzJPEGMissingEOI: jpegMissingEOI reads any bytes without panicking or
// running away (it runs on every JPEG image/jpeg refuses), and only ever
// completes a marker.
func FuzzJPEGMissingEOI(f *testing.F) {
	for _, p := range []string{"../examples/photos/kleiber.jpg", "testdata/eoi/restart-decodes.jpg", "testdata/eoi/restart-refused.jpg", "testdata/eoi/progressive.jpg"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:len(b)-2])
		f.Add(b[:len(b)-1])
	}
	// kleiber.jpg without its EOI, then a second scan, then a COM segment.
	k, err := os.ReadFile("../examples/photos/kleiber.jpg")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append(k[:len(k)-2:len(k)-2], k[jpegSegment(f, k, 0xda):len(k)-2]...))
	f.Add(append(k[:len(k)-2:len(k)-2], "\xff\xfe\x00\x04\xff\xda"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		tail, ok := jpegMissingEOI(data)
		if !ok {
			return
		}
		if !bytes.Equal(tail, []byte{0xd9}) && !bytes.Equal(tail, []byte{0xff, 0xd9}) {
			t.Fatalf("tail %x", tail)
		}
		// libjpeg reads a bad Huffman code as a zero (a warning, which PIL
		// ignores); image/jpeg refuses the file, with or without its EOI.
		_, err := jpeg.Decode(bytes.NewReader(append(bytes.Clone(data), tail...)))
		if err != nil && err != jpeg.FormatError("bad Huffman code") {
			t.Fatalf("completed with %x, image/jpeg: %v", tail, err)
		}
		s, _ := parseJPEGScan(data)
		end, marker, _ := s.libjpegReadsAll()
		if m, ok := scanOrFrameMarker(data[end:], marker); ok {
			t.Fatalf("repaired with marker %x after the scan", m)
		}
	})
}

// scanOrFrameMarker finds an SOS or SOFn marker in b, the bytes after a
// scan (marker: one already read before them, or 0), stepping over the
// contents of APPn and COM segments.
func scanOrFrameMarker(b []byte, marker byte) (byte, bool) {
	isSOx := func(m byte) bool {
		return m == 0xda || m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc
	}
	i := 0
	for {
		if marker == 0 {
			for i+1 < len(b) && (b[i] != 0xff || b[i+1] == 0 || b[i+1] == 0xff) {
				i++
			}
			if i+1 >= len(b) {
				return 0, false
			}
			marker, i = b[i+1], i+2
		}
		if isSOx(marker) {
			return marker, true
		}
		if (marker >= 0xe0 && marker <= 0xef || marker == 0xfe) && i+2 <= len(b) {
			i += int(binary.BigEndian.Uint16(b[i:]))
		}
		marker = 0
	}
}
