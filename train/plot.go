package train

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// PlotLoss draws the loss column of metrics.csv against the step into a PNG
// (the loss axis is logarithmic: MAE losses fall by orders of magnitude
// early and slowly later), written atomically.
func PlotLoss(metricsPath, pngPath string) error {
	b, err := os.ReadFile(metricsPath)
	if err != nil {
		return err
	}
	rows := readMetricRows(b, math.MaxInt)
	var xs, ys []float64
	for _, r := range rows {
		s, _ := strconv.Atoi(r[0])
		l, err := strconv.ParseFloat(r[2], 64)
		if err != nil || l <= 0 || math.IsNaN(l) || math.IsInf(l, 0) {
			continue
		}
		xs = append(xs, float64(s))
		ys = append(ys, math.Log10(l))
	}
	const W, H, left, right, top, bottom = 800, 420, 70, 20, 30, 40
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	draw.Draw(img, img.Rect, image.White, image.Point{}, draw.Src)
	axis := color.RGBA{60, 60, 60, 255}
	for x := left; x < W-right; x++ {
		img.Set(x, H-bottom, axis)
	}
	for y := top; y <= H-bottom; y++ {
		img.Set(left, y, axis)
	}
	label := func(x, y int, s string) {
		d := font.Drawer{Dst: img, Src: image.NewUniform(axis), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	label(left, 18, "MAE pretraining loss (log scale) by optimiser step")
	if len(xs) > 0 {
		x0, x1 := xs[0], xs[len(xs)-1]
		y0, y1 := ys[0], ys[0]
		for _, y := range ys {
			y0, y1 = math.Min(y0, y), math.Max(y1, y)
		}
		if x1 == x0 {
			x1 = x0 + 1
		}
		if y1-y0 < 1e-9 {
			y0, y1 = y0-0.5, y1+0.5
		}
		px := func(x float64) int { return left + int((x-x0)/(x1-x0)*float64(W-left-right-1)) }
		py := func(y float64) int { return H - bottom - int((y-y0)/(y1-y0)*float64(H-top-bottom)) }
		// The raw per-step loss in a light colour, and an exponential moving
		// average over ~2% of the run over it, since single steps are noisy.
		raw, smooth := color.RGBA{174, 199, 232, 255}, color.RGBA{31, 119, 180, 255}
		alpha := 2 / (math.Max(1, float64(len(ys))/50) + 1)
		ema := make([]float64, len(ys))
		for i, y := range ys {
			ema[i] = y
			if i > 0 {
				ema[i] = ema[i-1] + alpha*(y-ema[i-1])
				drawLine(img, px(xs[i-1]), py(ys[i-1]), px(xs[i]), py(ys[i]), raw)
			}
		}
		for i := 1; i < len(ema); i++ {
			drawLine(img, px(xs[i-1]), py(ema[i-1]), px(xs[i]), py(ema[i]), smooth)
		}
		label(4, py(y1)+10, fmt.Sprintf("%.3g", math.Pow(10, y1)))
		label(4, py(y0), fmt.Sprintf("%.3g", math.Pow(10, y0)))
		label(left, H-bottom+16, strconv.Itoa(int(x0)))
		s := strconv.Itoa(int(xs[len(xs)-1]))
		label(W-right-7*len(s), H-bottom+16, s)
		label(W/2-20, H-8, "step")
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return writeAtomic(pngPath, buf.Bytes())
}

func drawLine(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	e := dx + dy
	for {
		img.Set(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(a int) int {
	if a < 0 {
		return -a
	}
	return a
}
