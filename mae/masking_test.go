package mae

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// NaN noise sorts last, after +Inf, as torch.argsort puts it, so the kept
// patches are the smallest numbers; the order among NaNs (which torch
// leaves unspecified) is by index. Expected from torch 1.13:
// argsort([nan, .5, .1, .3, nan, .2, inf, -1]) = [7, 2, 5, 3, 1, 6, 0, 4].
func TestMaskingNaNSortsLast(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, noise := range [][]float32{
		{nan, .5, .1, .3, nan, .2, inf, -1},
		{.5, nan, .1, .3, .2, nan, inf, -1},
	} {
		m := NewMasking(noise, 1, len(noise), 3)
		var nums []float32
		for _, v := range noise {
			if v == v {
				nums = append(nums, v)
			}
		}
		slices.Sort(nums)
		for rank, id := range m.IDsShuffle {
			v := noise[id]
			if rank < len(nums) && v != nums[rank] || rank >= len(nums) && v == v {
				t.Fatalf("noise %v: ids_shuffle %v puts %v at rank %d", noise, m.IDsShuffle, v, rank)
			}
			if (m.Mask[id] == 0) != (rank < 3) || m.IDsRestore[id] != rank {
				t.Fatalf("noise %v: mask %v, ids_restore %v disagree with ids_shuffle %v", noise, m.Mask, m.IDsRestore, m.IDsShuffle)
			}
		}
		if want := []int{7, 2, 5}; noise[0] != noise[0] && !slices.Equal(m.IDsShuffle[:3], want) {
			t.Errorf("kept %v, want %v (torch)", m.IDsShuffle[:3], want)
		}
	}
}

// Noise rows with a NaN or an infinity are refused, naming the rows'
// source and the row and column of the first; finite rows pass, values
// outside [0, 1) included.
func TestNoiseRowsCheck(t *testing.T) {
	if err := (NoiseRows{Name: "n.npy", L: 2, Data: []float32{0, .5, -3, 7}}).Check(); err != nil {
		t.Errorf("finite rows: %v", err)
	}
	for v, want := range map[float32]string{float32(math.NaN()): "NaN", float32(math.Inf(1)): "+Inf", float32(math.Inf(-1)): "-Inf"} {
		err := NoiseRows{Name: "n.npy", L: 3, Data: []float32{.1, .2, .3, .4, .5, v, v}}.Check()
		if err == nil || !strings.Contains(err.Error(), "n.npy: row 1, column 2 ([1, 2], 0-based) is "+want) {
			t.Errorf("%v: %v", v, err)
		}
	}
}
