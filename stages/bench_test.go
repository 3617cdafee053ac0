package stages

import (
	"os"
	"testing"
)

// go test ./stages -run '^$' -bench . -benchmem
func benchPhoto(b *testing.B, path string, mode ResizeMode) {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Skip(err)
	}
	p := Preprocess{Size: 224, Mode: mode}
	dst := make([]float32, 3*224*224)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := p.Tensor(dst, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTensorChina640(b *testing.B) {
	benchPhoto(b, "/usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg", CenterCrop)
}

func BenchmarkTensorRetina1411(b *testing.B) {
	benchPhoto(b, "/usr/lib/python3/dist-packages/skimage/data/retina.jpg", CenterCrop)
}

func BenchmarkDecodeChina640(b *testing.B) {
	data, err := os.ReadFile("/usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg")
	if err != nil {
		b.Skip(err)
	}
	var p Preprocess
	for i := 0; i < b.N; i++ {
		if _, _, _, err := p.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
