package mae

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// readNpy reads a little-endian C-order .npy of float32, float64 or int64
// into float64s: enough for comparing fixtures.
func readNpy(t testing.TB, path string) ([]int, []float64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10 || string(b[1:6]) != "NUMPY" {
		t.Fatalf("%s: not an npy file", path)
	}
	var hlen, off int
	if b[6] == 1 {
		hlen, off = int(binary.LittleEndian.Uint16(b[8:])), 10
	} else {
		hlen, off = int(binary.LittleEndian.Uint32(b[8:])), 12
	}
	header := string(b[off : off+hlen])
	data := b[off+hlen:]
	descr := regexp.MustCompile(`'descr':\s*'([^']+)'`).FindStringSubmatch(header)
	shp := regexp.MustCompile(`'shape':\s*\(([^)]*)\)`).FindStringSubmatch(header)
	if descr == nil || shp == nil || strings.Contains(header, "'fortran_order': True") {
		t.Fatalf("%s: unsupported header %q", path, header)
	}
	var shape []int
	n := 1
	for _, s := range strings.Split(shp[1], ",") {
		if s = strings.TrimSpace(s); s != "" {
			v, _ := strconv.Atoi(s)
			shape = append(shape, v)
			n *= v
		}
	}
	out := make([]float64, n)
	for i := range out {
		switch descr[1] {
		case "<f4":
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])))
		case "<f8":
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
		case "<i8":
			out[i] = float64(int64(binary.LittleEndian.Uint64(data[8*i:])))
		case "|b1", "|u1":
			out[i] = float64(data[i])
		default:
			t.Fatalf("%s: dtype %s", path, descr[1])
		}
	}
	return shape, out
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// maxDiff returns the largest absolute difference, failing on length mismatch.
func maxDiff[A, B float32 | float64 | int](t testing.TB, what string, got []A, want []B) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	m := 0.0
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		m = max(m, d)
	}
	return m
}

func fmtShape(s []int) string { return fmt.Sprint(s) }
