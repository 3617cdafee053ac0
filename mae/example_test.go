package mae_test

import (
	"fmt"
	"path/filepath"

	"github.com/maeembed/maeembed/mae"
)

// The embedding stage takes normalised CHW images ([3,S,S] float32, as
// package stages writes them) and returns one vector per image; patchify
// stays inside.
func ExampleNewEmbedder() {
	const fixture = "testdata/fixtures/tiny32"
	m, err := mae.Load(filepath.Join(fixture, "model.pth"), filepath.Join(fixture, "hf", "config.json"))
	if err != nil {
		panic(err)
	}
	emb, err := mae.NewEmbedder(m, mae.PoolCLS, 2)
	if err != nil {
		panic(err)
	}
	s := m.Config.ImageSize
	images := [][]float32{make([]float32, 3*s*s), make([]float32, 3*s*s)} // two mean-grey images
	out := make([]float32, 2*emb.Dim())
	if err := emb.Embed(out, images); err != nil {
		panic(err)
	}
	fmt.Println(s, emb.Dim(), out[0] == out[emb.Dim()])
	// Output: 32 48 true
}

// Masking noise comes from a seed (each input's own stream, so masks do not
// depend on batching) or from rows of the reference's own draws.
func ExampleSeededNoise() {
	a, b := make([]float32, 4), make([]float32, 4)
	mae.SeededNoise(7).Fill(a, 12)
	mae.NoiseRows{Name: "noise.npy", L: 4, Data: append(make([]float32, 12*4), a...)}.Fill(b, 12)
	fmt.Println(a[0] == b[0], a[0] >= 0 && a[0] < 1)
	// Output: true true
}
