package mae

import "testing"

// NumParams counts what Tensors holds, without unpacking the weights.
func TestNumParams(t *testing.T) {
	for _, dec := range []bool{false, true} {
		m, err := New(smallConfig(), dec, 1)
		if err != nil {
			t.Fatal(err)
		}
		got := m.NumParams()
		want := 0
		for _, x := range m.Tensors() {
			want += len(x.Data)
		}
		if got != want {
			t.Errorf("decoder %v: NumParams %d, tensors hold %d", dec, got, want)
		}
	}
}

// Loading keeps each Linear weight once, packed: the checkpoint's copy is
// dropped from the map and no unpacked W exists until asked for.
func TestLoadHoldsLinearWeightsOnce(t *testing.T) {
	m, err := New(smallConfig(), true, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range m.linears() {
		if l.W != nil {
			t.Fatalf("Linear %d×%d keeps an unpacked copy after loading", l.Out, l.In)
		}
	}
	tensors := m.Tensors() // unpacks on demand
	c := smallConfig()
	m2, err := FromTensors(c, tensors, "round trip")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tensors["blocks.0.attn.qkv.weight"]; ok {
		t.Error("FromTensors left the checkpoint's copy of a Linear weight in the map")
	}
	if _, ok := tensors["blocks.0.norm1.weight"]; !ok {
		t.Error("small tensors are kept (shared), not removed")
	}
	if m2.Encoder.Blocks[0].QKV.W != nil {
		t.Error("rebuilt model keeps an unpacked W")
	}
}
