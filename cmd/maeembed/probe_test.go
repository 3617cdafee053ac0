package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/mae/weights"
	"github.com/maeembed/maeembed/probe"
	"github.com/maeembed/maeembed/stages"
	"golang.org/x/image/draw"
)

// Colour photos of python3-skimage (not the wallpaper packages, which are
// kept for training): one class each.
var probePhotos = []string{
	"astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg",
	"ihc.png", "motorcycle_left.png", "retina.jpg", "rocket.jpg",
}

// cropTask writes n random square crops of each photo, 64×64, as
// ROOT/<photo>/crop-NN.png: a task whose classes are the photos the crops
// came from. Seeded, so the images are the same in every run.
func cropTask(t *testing.T, n int) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "crops")
	r := rand.New(rand.NewPCG(42, 1))
	pre := stages.Preprocess{Mode: stages.NoResize}
	for _, name := range probePhotos {
		b, err := os.ReadFile(filepath.Join(skimageData, name))
		if errors.Is(err, fs.ErrNotExist) {
			e2eSkipOrFail(t, "photo %s missing: apt-get install -y python3-skimage", name)
		}
		if err != nil {
			t.Fatal(err)
		}
		img, w, h, err := pre.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		class := strings.TrimSuffix(name, filepath.Ext(name))
		if err := os.MkdirAll(filepath.Join(root, class), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			// A side of 25–50% of the shorter side, anywhere in the photo.
			s := min(w, h) * (25 + r.IntN(26)) / 100
			x0, y0 := r.IntN(w-s+1), r.IntN(h-s+1)
			dst := image.NewNRGBA(image.Rect(0, 0, 64, 64))
			draw.CatmullRom.Scale(dst, dst.Bounds(), img, image.Rect(x0, y0, x0+s, y0+s), draw.Src, nil)
			f, err := os.Create(filepath.Join(root, class, fmt.Sprintf("crop-%02d.png", i)))
			if err != nil {
				t.Fatal(err)
			}
			if err := png.Encode(f, dst); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	return root
}

// Real photos through the real embed path: crops of 8 photos, labelled by
// their photo (ImageFolder), embedded by the tiny fixture encoder (random
// weights) and probed, with the raw-pixel baseline beside it. Both probes
// must beat chance by more than sampling can explain: with n test rows and
// 8 balanced classes, an accuracy above 1/8 + sqrt(ln(2/1e-6)/(2n)) has a
// probability below 1e-6 for features that carry no information
// (Hoeffding; see probe's TestNonSeparable).
func TestProbeRealPhotos(t *testing.T) {
	root := cropTask(t, 20)
	out := filepath.Join(t.TempDir(), "emb")
	mustRun(t, "embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "--batch-size", "16", "-o", out, root)
	head := filepath.Join(t.TempDir(), "head.safetensors")
	js := mustRun(t, "probe", "--test-fraction", "0.5", "--seed", "1", "--format", "json", "--pixels", root, "-o", head, out)
	var rep probe.Report
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("report %q: %v", js, err)
	}
	if rep.Images != 160 || len(rep.Classes) != 8 || rep.Test != 80 || len(rep.Results) != 2 {
		t.Fatalf("report: %d images, %d classes, %d test, %d results; want 160, 8, 80, 2", rep.Images, len(rep.Classes), rep.Test, len(rep.Results))
	}
	bound := 1.0/8 + math.Sqrt(math.Log(2/1e-6)/(2*float64(rep.Test)))
	for _, r := range rep.Results {
		t.Logf("%s (dim %d): kNN %.3f, linear %.3f (chance bound %.3f)", r.Name, r.Dim, r.KNNTop1, r.LinearTop1, bound)
		if r.KNNTop1 <= bound || r.LinearTop1 <= bound {
			t.Errorf("%s: kNN %.3f, linear %.3f: not above chance (%.3f)", r.Name, r.KNNTop1, r.LinearTop1, bound)
		}
	}
	if rep.Results[0].Dim != 48 || rep.Results[1].Name != "pixels16" || rep.Results[1].Dim != 768 {
		t.Errorf("results %+v", rep.Results)
	}
	// The saved head is the one that was measured: it reproduces the
	// reported linear accuracy on the same split.
	h, err := probe.LoadHead(head)
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := weights.SafetensorsMetadata(head)
	if meta["maeembed.probe.test_top1"] == "" || !strings.Contains(meta["classes"], "rocket") {
		t.Errorf("head metadata %v", meta)
	}
	emb, err := probe.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := probe.NewDataset(emb, probe.FolderLabel)
	if err != nil {
		t.Fatal(err)
	}
	_, test, err := probe.Split(ds.Y, len(ds.Classes), 0.5, 1)
	if err != nil {
		t.Fatal(err)
	}
	pred := h.Predict(emb.X)
	ok := 0
	for _, i := range test {
		if pred[i] == ds.Y[i] {
			ok++
		}
	}
	if got := float64(ok) / float64(len(test)); got != rep.Results[0].LinearTop1 {
		t.Errorf("saved head: %.4f on the test rows, report says %.4f", got, rep.Results[0].LinearTop1)
	}
	// A config file sets the same options, flags override it.
	cfg := filepath.Join(t.TempDir(), "probe.yaml")
	os.WriteFile(cfg, []byte("k: 5\ntemperature: 0.1\nepochs: 3\ntest_fraction: 0.5\nseed: 1\nformat: json\n"), 0o644)
	js = mustRun(t, "probe", "--config-file", cfg, "--epochs", "4", out)
	var rc probe.Report
	if err := json.Unmarshal([]byte(js), &rc); err != nil {
		t.Fatalf("report %q: %v", js, err)
	}
	if rc.K != 5 || rc.Temperature != 0.1 || rc.Epochs != 4 || rc.Test != 80 || rc.Seed != 1 {
		t.Errorf("config file: k %d, T %g, epochs %d, test %d, seed %d; want 5, 0.1, 4 (flag), 80, 1", rc.K, rc.Temperature, rc.Epochs, rc.Test, rc.Seed)
	}
	// The text report names every feature set and the baseline.
	txt := mustRun(t, "probe", "--test-fraction", "0.5", "--seed", "1", "--epochs", "5", out)
	for _, s := range []string{"embeddings", "majority class", "160 images in 8 classes"} {
		if !strings.Contains(txt, s) {
			t.Errorf("text report lacks %q:\n%s", s, txt)
		}
	}
}

func TestProbeUsage(t *testing.T) {
	for _, args := range [][]string{
		{"probe"},
		{"probe", "a", "b"},
		{"probe", "--format", "xml", "x"},
		{"probe", "--labels", "column", "x"},
		{"probe", "--labels", "folder", "--label-column", "c", "x"},
		{"probe", "--label-file", "l.parquet", "x"},
		{"probe", filepath.Join(t.TempDir(), "nothere") + "/"},
	} {
		if code, _, stderr := maeembed(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)\n%s", args, code, stderr)
		}
	}
	if code, _, stderr := maeembed(t, "probe", t.TempDir()); code != 1 || !strings.Contains(stderr, "part-*.parquet") {
		t.Errorf("empty dir: exit %d, %s", code, stderr)
	}
	// Embeddings of a flat folder have no folder labels: the error says
	// what folder labels need.
	flat := filepath.Join(t.TempDir(), "emb")
	mustRun(t, "embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", flat, filepath.Join(fixtures, "tiny32", "images"))
	if code, _, stderr := maeembed(t, "probe", flat); code != 1 || !strings.Contains(stderr, "no embedding has a label") || !strings.Contains(stderr, "class folders") {
		t.Errorf("flat folder: exit %d, %s", code, stderr)
	}
}

// Labels from a column of a separate Parquet file (written by DuckDB),
// joined on id: here two classes that cut across the folders, and ids the
// labels file does not name are left out.
func TestProbeLabelColumn(t *testing.T) {
	root := cropTask(t, 5)
	out := filepath.Join(t.TempDir(), "emb")
	mustRun(t, "embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "--format", "npy", "-o", out, root)
	labels := filepath.Join(t.TempDir(), "labels.parquet")
	// Every crop of the first six photos, labelled by whether the photo name
	// sorts before "d"; the last two photos are not in the file.
	duckQuery(t, fmt.Sprintf(`COPY (SELECT id, CASE WHEN id < 'd' THEN 'early' ELSE 'late' END AS half
		FROM read_parquet('%s') WHERE id < 'retina') TO '%s' (FORMAT parquet)`, filepath.Join(out, "metadata.parquet"), labels))
	js := mustRun(t, "probe", "--label-column", "half", "--label-file", labels, "--format", "json", "--epochs", "5", out)
	var rep probe.Report
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("report %q: %v", js, err)
	}
	if rep.Images != 30 || rep.Unlabelled != 10 || strings.Join(rep.Classes, ",") != "early,late" {
		t.Errorf("labelled %d, unlabelled %d, classes %v; want 30, 10, [early late]", rep.Images, rep.Unlabelled, rep.Classes)
	}
}

// --output is the head's file: a directory is a usage error before any
// work (it used to fail at the end, after the probes, on the rename), and
// missing parent directories are made.
func TestProbeOutputPath(t *testing.T) {
	root := cropTask(t, 2)
	out := filepath.Join(t.TempDir(), "emb")
	mustRun(t, "embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, root)
	for _, o := range []string{out, t.TempDir() + "/", filepath.Join(t.TempDir(), "new") + "/"} {
		code, _, stderr := maeembed(t, "probe", "--epochs", "2", "-o", o, out)
		if code != 2 || !strings.Contains(stderr, "is a directory: give the head's file name") {
			t.Errorf("probe -o %s: exit %d, want 2 (usage)\n%s", o, code, stderr)
		}
	}
	head := filepath.Join(t.TempDir(), "a", "b", "head.safetensors")
	mustRun(t, "probe", "--epochs", "2", "-o", head, out)
	if _, err := probe.LoadHead(head); err != nil {
		t.Errorf("head under new directories: %v", err)
	}
}
