package weights

import "testing"

// The fingerprint follows the tensors (names, shapes, values), not the map
// they arrive in; one changed value, or a reshape, changes it.
func TestFingerprint(t *testing.T) {
	ck := func() *Checkpoint {
		return &Checkpoint{Tensors: map[string]*Tensor{
			"a": {Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}},
			"b": {Shape: []int{3}, Data: []float32{5, 6, 7}},
		}}
	}
	base := ck().Fingerprint()
	if len(base) != 16 || base != ck().Fingerprint() {
		t.Fatalf("fingerprint %q not stable", base)
	}
	changed := ck()
	changed.Tensors["b"].Data[2] = 7.0000005
	reshaped := ck()
	reshaped.Tensors["a"].Shape = []int{4}
	renamed := ck()
	renamed.Tensors["c"] = renamed.Tensors["b"]
	delete(renamed.Tensors, "b")
	for name, c := range map[string]*Checkpoint{"changed value": changed, "reshaped": reshaped, "renamed": renamed} {
		if fp := c.Fingerprint(); fp == base {
			t.Errorf("%s: same fingerprint %s", name, fp)
		}
	}
}

// ViT-B's encoder size (86M float32 values, 343 MB) in one tensor set.
func BenchmarkFingerprintViTB(b *testing.B) {
	const n = 86_000_000
	ck := &Checkpoint{Tensors: map[string]*Tensor{}}
	for i := range 86 {
		d := make([]float32, n/86)
		for j := range d {
			d[j] = float32(i*j) * 1e-3
		}
		ck.Tensors[string(rune('A'+i%26))+string(rune('a'+i/26))] = &Tensor{Shape: []int{len(d)}, Data: d}
	}
	b.SetBytes(4 * n)
	for b.Loop() {
		ck.Fingerprint()
	}
}
