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
