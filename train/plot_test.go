package train

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// The loss curve is a PNG of the expected size, and non-positive or
// truncated rows do not break it.
func TestPlotLoss(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "metrics.csv")
	data := "step,epoch,loss,lr\n1,0.1,2.5,0\n2,0.2,1.5,1e-4\n3,0.3,0,1e-4\n4,0.4,1.2,1e-4\n5,0.5,1."
	if err := os.WriteFile(csv, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "loss.png")
	if err := PlotLoss(csv, out); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 800 || b.Dy() != 420 {
		t.Errorf("loss.png is %v", b)
	}
}
