package probe

import (
	"math/rand/v2"
	"testing"
)

func randMatrix(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// The kNN probe at an ImageNet-subset scale (10k train, 2k test, ViT-B
// width, 100 classes), against the same similarities computed with plain
// dot products: why the similarity block goes through the GEMM.
//
//	go test ./probe -run - -bench KNN -benchtime 3x
func BenchmarkKNN(b *testing.B) {
	const nTrain, nTest, d, c = 10000, 2000, 768, 100
	train, test := randMatrix(1, nTrain*d), randMatrix(2, nTest*d)
	y := make([]int, nTrain)
	for i := range y {
		y[i] = i % c
	}
	flop := 2.0 * nTrain * nTest * d
	b.Run("gemm", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := DefaultKNN.Predict(train, y, c, test, d); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(flop*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("dot-loop", func(b *testing.B) {
		tn, q := make([]float32, len(train)), make([]float32, len(test))
		l2Normalize(tn, train, d)
		l2Normalize(q, test, d)
		sim := make([]float32, nTrain)
		for i := 0; i < b.N; i++ {
			for r := 0; r < nTest; r++ {
				qr := q[r*d : (r+1)*d]
				for j := range sim {
					var s float32
					for k, v := range tn[j*d : (j+1)*d] {
						s += v * qr[k]
					}
					sim[j] = s
				}
			}
		}
		b.ReportMetric(flop*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}

// One epoch of the linear probe at the same scale (40 steps of 256 rows).
//
//	go test ./probe -run - -bench TrainLinear -benchtime 3x
func BenchmarkTrainLinear(b *testing.B) {
	const n, d, c = 10000, 768, 100
	x := randMatrix(3, n*d)
	y := make([]int, n)
	classes := make([]string, c)
	for i := range y {
		y[i] = i % c
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := TrainLinear(x, y, d, classes, LinearOptions{Epochs: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
