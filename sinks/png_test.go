package sinks

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"image"
	"image/png"
	"maps"
	"slices"
)

// pngText returns the iTXt/tEXt key-value chunks of a PNG file.
func pngText(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for p := 8; p+12 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[p:]))
		typ, data := string(b[p+4:p+8]), b[p+8:p+8+n]
		switch typ {
		case "iTXt":
			k, rest, _ := bytes.Cut(data, []byte{0})
			rest = rest[2:]                         // compression flag, method
			_, rest, _ = bytes.Cut(rest, []byte{0}) // language
			_, rest, _ = bytes.Cut(rest, []byte{0}) // translated keyword
			out[string(k)] = string(rest)
		case "tEXt":
			k, v, _ := bytes.Cut(data, []byte{0})
			out[string(k)] = string(v)
		}
		p += 12 + n
	}
	return out
}

// Any id gives a file: a 255-byte name (the longest a file system takes,
// which the temporary name would exceed) is shortened, two long ids that
// differ only at the end stay apart, and the file carries the id.
func TestReconPNGLongNames(t *testing.T) {
	dir := t.TempDir()
	w, err := NewReconPNG(dir, testReconMeta)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 125) + "a.jpg" // 255 bytes
	ids := []string{long, strings.Repeat("é", 125) + "b.jpg", "sub/" + long, "short.jpg", "nul\x00.jpg", "nul%00.jpg"}
	rows := reconRows(rand.New(rand.NewPCG(3, 4)), testReconMeta, 0, len(ids))
	var failed []error
	for i := range rows {
		rows[i].ID = ids[i]
		rows[i].Ack = func(err error) {
			if err != nil {
				failed = append(failed, err)
			}
		}
	}
	if err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if len(failed) > 0 {
		t.Fatalf("rows failed: %v", failed)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		p := PNGPath(dir, id)
		for _, c := range strings.Split(strings.TrimPrefix(p, dir+"/"), "/") {
			if len(c) > 255-25 || !utf8.ValidString(c) {
				t.Errorf("component %q (%d bytes) of %s", c, len(c), id)
			}
		}
		if seen[p] {
			t.Errorf("two ids share %s", p)
		}
		seen[p] = true
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		f.Close()
		if got := pngText(t, p)["maeembed.id"]; got != id {
			t.Errorf("%s: maeembed.id %q, want %q", p, got, id)
		}
	}
	if got := PNGPath("out", "short.jpg"); got != "out/short.jpg.png" {
		t.Errorf("a short name changed: %s", got)
	}
	// PIL, the reference's image library, reads the id too.
	py := numpyPython(t)
	if err := exec.Command(py, "-c", "import PIL").Run(); err != nil {
		skipOrFail(t, "PIL not available in %s: %v", py, err)
	}
	out, err := exec.Command(py, "-c", "import sys; from PIL import Image; print(Image.open(sys.argv[1]).text['maeembed.id'], end='')", PNGPath(dir, long)).CombinedOutput()
	if err != nil || string(out) != long {
		t.Errorf("PIL read maeembed.id %q (%v), want the id", out, err)
	}
}

// A file the file system refuses fails that row alone, with an ItemError.
func TestReconPNGOneFileFails(t *testing.T) {
	dir := t.TempDir()
	w, err := NewReconPNG(dir, testReconMeta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(PNGPath(dir, "taken.jpg"), 0o755); err != nil { // a directory where the file goes
		t.Fatal(err)
	}
	rows := reconRows(rand.New(rand.NewPCG(5, 6)), testReconMeta, 0, 3)
	acks := make([]error, 3)
	called := 0
	for i, id := range []string{"a.jpg", "taken.jpg", "c.jpg"} {
		rows[i].ID = id
		rows[i].Ack = func(err error) { acks[i] = err; called++ }
	}
	if err := w.Write(rows); err != nil {
		t.Fatalf("one bad file ended the write: %v", err)
	}
	var ie *ItemError
	if called != 3 || acks[0] != nil || acks[2] != nil || !errors.As(acks[1], &ie) || ie.ID != "taken.jpg" {
		t.Fatalf("acks %v", acks)
	}
	for _, id := range []string{"a.jpg", "c.jpg"} {
		if _, err := os.Stat(PNGPath(dir, id)); err != nil {
			t.Error(err)
		}
	}
	if hidden := hiddenFiles(t, filepath.Dir(PNGPath(dir, "taken.jpg"))); len(hidden) != 0 {
		t.Errorf("temporaries left: %v", hidden)
	}
}

// fsizeEnv names the output directory of TestReconPNGStorageFails's child.
const fsizeEnv = "SINKS_FSIZE_DIR"

// fsizeRows are rows whose PNGs are small (a flat image) except those
// named "noise*" (random pixels: about 12 KB each).
func fsizeRows(ids ...string) []ReconRow {
	m := testReconMeta
	m.Patches, m.Patch = 16, 8
	rows := reconRows(rand.New(rand.NewPCG(7, 8)), m, 0, len(ids))
	for i, id := range ids {
		rows[i].ID = id
		if !strings.HasPrefix(id, "noise") {
			for _, v := range [][]float32{rows[i].Image, rows[i].PredImage, rows[i].PixelMask} {
				clear(v)
			}
		}
	}
	return rows
}

// A storage failure (here the file size limit, EFBIG, as a full disk gives
// ENOSPC) is no bad input: the PNG writer stops as the other formats do.
// Write returns the error and acks the failing row and the rest of its
// batch with it, no ItemError; later Writes are refused; no temporary is
// left; the PNGs published before stay and a resume skips them. The
// limit is set in a child process (RLIMIT_FSIZE applies to a whole
// process), which prints what it saw.
func TestReconPNGStorageFails(t *testing.T) {
	if dir := os.Getenv(fsizeEnv); dir != "" {
		fsizeChild(t, dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReconPNGStorageFails$")
	cmd.Env = append(os.Environ(), fsizeEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{"ack small1.jpg <nil>\n", "ack small2.jpg <nil>\n",
		"ack noise.jpg item=false file too large\n", "ack small3.jpg item=false file too large\n",
		"write: file too large\n", "ack small4.jpg item=false writer closed\n", "again: writer closed\n", "child done\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("child output lacks %q:\n%s", want, got)
		}
	}
	if h := hiddenFiles(t, dir); len(h) != 0 {
		t.Errorf("temporaries left: %v", h)
	}
	done, err := ReadDoneIDs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]bool{"small1.jpg": true, "small2.jpg": true}; !maps.Equal(done, want) {
		t.Errorf("done after the failure: %v, want %v", done, want)
	}
}

// fsizeChild is TestReconPNGStorageFails's child: it writes under an
// RLIMIT_FSIZE that a flat image's PNG fits and a noisy one's does not.
func fsizeChild(t *testing.T, dir string) {
	lim := syscall.Rlimit{Cur: 4096, Max: 4096}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	m := testReconMeta
	m.Patches, m.Patch = 16, 8
	w, err := NewReconPNG(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	ack := func(rows []ReconRow) {
		for i := range rows {
			id := rows[i].ID
			rows[i].Ack = func(err error) {
				var ie *ItemError
				switch {
				case err == nil:
					fmt.Printf("ack %s <nil>\n", id)
				case errors.Is(err, errWriteAfterClose):
					fmt.Printf("ack %s item=%v writer closed\n", id, errors.As(err, &ie))
				case errors.Is(err, syscall.EFBIG):
					fmt.Printf("ack %s item=%v file too large\n", id, errors.As(err, &ie))
				default:
					fmt.Printf("ack %s %v\n", id, err)
				}
			}
		}
	}
	rows := fsizeRows("small1.jpg", "small2.jpg", "noise.jpg", "small3.jpg")
	ack(rows)
	if err := w.Write(rows); errors.Is(err, syscall.EFBIG) {
		fmt.Println("write: file too large")
	} else {
		fmt.Println("write:", err)
	}
	rows = fsizeRows("small4.jpg")
	ack(rows)
	if err := w.Write(rows); errors.Is(err, errWriteAfterClose) {
		fmt.Println("again: writer closed")
	} else {
		fmt.Println("again:", err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	fmt.Println("child done")
}

// A PNG directory made with one seed refuses a run with another (as npy
// does) instead of replacing its panels; a run with the same settings
// (a rerun) is welcome.
func TestReconPNGRefusesOtherSettings(t *testing.T) {
	dir := t.TempDir()
	w, err := NewReconPNG(dir, testReconMeta)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(reconRows(rand.New(rand.NewPCG(7, 8)), testReconMeta, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewReconPNG(dir, testReconMeta); err != nil {
		t.Errorf("rerun with the same settings: %v", err)
	}
	other := testReconMeta
	other.Seed = testReconMeta.Seed + 3
	want := fmt.Sprintf("was written with maeembed.seed=\"%d\", this run has \"%d\"", testReconMeta.Seed, other.Seed)
	if _, err := NewReconPNG(dir, other); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("another seed: err = %v, want %q", err, want)
	}
}

// A PNG output's published files are its done ids, so a resumed run skips
// them instead of drawing them again: every id the writer published is
// read back (long and nested ones too), and a temporary of a killed run, a
// PNG without the id chunk, a published PNG copied under another name and
// one whose chunk is damaged are not done.
func TestReadDoneIDsPNG(t *testing.T) {
	dir := t.TempDir()
	w, err := NewReconPNG(dir, testReconMeta)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"a.jpg", "sub/b c.jpg", strings.Repeat("é", 125) + "x.jpg", "d\\xE9.jpg", "damaged.jpg"}
	rows := reconRows(rand.New(rand.NewPCG(9, 10)), testReconMeta, 0, len(ids))
	for i := range rows {
		rows[i].ID = ids[i]
	}
	if err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	// A killed run's temporary, a copy, a foreign PNG, a damaged chunk.
	b, err := os.ReadFile(PNGPath(dir, "a.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ".e.jpg.png.123.maeembed-tmp"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "copy.jpg.png"), b, 0o644)
	var foreign bytes.Buffer
	png.Encode(&foreign, image.NewGray(image.Rect(0, 0, 2, 2)))
	os.WriteFile(filepath.Join(dir, "foreign.jpg.png"), foreign.Bytes(), 0o644)
	d, err := os.ReadFile(PNGPath(dir, "damaged.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	d[ihdrEnd+8+len("maeembed.id")+5] ^= 1 // the id's first byte; the CRC no longer matches
	os.WriteFile(PNGPath(dir, "damaged.jpg"), d, 0o644)

	done, err := ReadDoneIDs(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, id := range ids[:4] {
		want[id] = true
	}
	if !maps.Equal(done, want) {
		t.Errorf("done ids %q, want %q", slices.Sorted(maps.Keys(done)), slices.Sorted(maps.Keys(want)))
	}
	// Without maeembed-png.json the directory is no PNG output.
	os.Remove(filepath.Join(dir, pngMetaName))
	if done, err := ReadDoneIDs(dir); err != nil || len(done) != 0 {
		t.Errorf("without %s: %d done ids, %v", pngMetaName, len(done), err)
	}
}

// A PNG's temporary lives in its id's subdirectory: CleanTemps removes a
// killed writer's there too, but not a live writer's, a user's hidden file,
// or anything behind a symbolic link out of the tree.
func TestCleanTempsPNGSubdirs(t *testing.T) {
	dir := t.TempDir()
	w, err := NewReconPNG(dir, testReconMeta)
	if err != nil {
		t.Fatal(err)
	}
	rows := reconRows(rand.New(rand.NewPCG(3, 4)), testReconMeta, 0, 1)
	rows[0].ID = "small/a.jpg"
	if err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	dead := []string{
		filepath.Join(dir, "small", ".infinite-sea-8.jpg.png.2822416493"+tempSuffix),
		filepath.Join(dir, "small", "deeper", ".b.jpg.png.1"+tempSuffix),
	}
	os.MkdirAll(filepath.Join(dir, "small", "deeper"), 0o755)
	for _, p := range dead {
		if err := writeFile(p); err != nil {
			t.Fatal(err)
		}
	}
	live, err := createAtomic(PNGPath(dir, "small/live.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()
	user := filepath.Join(dir, "small", ".notes")
	outside := t.TempDir()
	foreign := filepath.Join(outside, ".c.jpg.png.2"+tempSuffix)
	for _, p := range []string{user, foreign} {
		if err := writeFile(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := CleanTemps(dir); err != nil {
		t.Fatal(err)
	}
	want := []string{live.Name(), user}
	slices.Sort(want)
	if h := hiddenFiles(t, dir); !slices.Equal(h, want) {
		t.Fatalf("after CleanTemps hidden files %v, want %v", h, want)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("a temporary behind a link out of the tree was touched: %v", err)
	}
	if _, err := os.Stat(PNGPath(dir, "small/a.jpg")); err != nil {
		t.Errorf("published PNG: %v", err)
	}
}

// A user's own PNG where a panel would go is never replaced: in a
// directory without maeembed-png.json (not a PNG output) the writer
// refuses to start, writing nothing; in a PNG output, the row whose file
// it is fails (an ItemError) and the others are written. A file of the
// writer's own (a rerun writing an id again) is still replaced.
func TestReconPNGRefusesAForeignFile(t *testing.T) {
	var user bytes.Buffer
	if err := png.Encode(&user, image.NewGray(image.Rect(0, 0, 3, 2))); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	userPath := PNGPath(dir, "calla.jpg")
	if err := os.WriteFile(userPath, user.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := NewReconPNG(dir, testReconMeta)
	if err == nil || !strings.Contains(err.Error(), "not a maeembed output") || !strings.Contains(err.Error(), userPath) {
		t.Errorf("a directory with the user's %s: %v, want a refusal naming it", userPath, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the refused writer left %d entries, want only the user's file", len(ents))
	}

	// A PNG output with a file of the user's put in it since.
	dir = t.TempDir()
	rows := reconRows(rand.New(rand.NewPCG(5, 6)), testReconMeta, 0, 3)
	rows[0].ID = "a.jpg"
	for rerun := 0; rerun < 2; rerun++ {
		w, err := NewReconPNG(dir, testReconMeta)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(rows[:1]); err != nil {
			t.Fatalf("run %d writing a.jpg: %v", rerun, err)
		}
	}
	userPath = PNGPath(dir, "b.jpg")
	if err := os.WriteFile(userPath, user.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := NewReconPNG(dir, testReconMeta)
	if err != nil {
		t.Fatal(err)
	}
	acks := make([]error, 2)
	for i, id := range []string{"b.jpg", "c.jpg"} {
		rows[1+i].ID = id
		rows[1+i].Ack = func(err error) { acks[i] = err }
	}
	if err := w.Write(rows[1:]); err != nil {
		t.Fatal(err)
	}
	var ie *ItemError
	if !errors.As(acks[0], &ie) || ie.ID != "b.jpg" || !strings.Contains(acks[0].Error(), "not a maeembed output") || acks[1] != nil {
		t.Errorf("acks %v, want b.jpg's an ItemError saying its file is not a maeembed output, c.jpg's nil", acks)
	}
	if got, _ := os.ReadFile(userPath); !bytes.Equal(got, user.Bytes()) {
		t.Error("the user's file was replaced")
	}
	if _, err := os.Stat(PNGPath(dir, "c.jpg")); err != nil {
		t.Error(err)
	}
}
