package probe

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/maeembed/maeembed/mae/kernels"
)

// KNN is the weighted k-nearest-neighbour classifier of DINO's evaluation
// (Caron et al. 2021, eval_knn.py, knn_classifier), which MAE-style papers
// report as "k-NN accuracy": features are L2-normalised, the similarity is
// the cosine (a dot product), the K most similar training rows vote for
// their class with weight exp(similarity/T), and the class with the largest
// summed weight wins. DINO uses K = 20 and T = 0.07.
//
// Ties: among equally similar training rows the earlier one is the nearer
// neighbour, and among classes with equal votes the lower index wins.
type KNN struct {
	K int     `yaml:"k"`
	T float64 `yaml:"temperature"`
}

// DefaultKNN is DINO's setting.
var DefaultKNN = KNN{K: 20, T: 0.07}

// simBudget caps the similarity block of one chunk of test rows (floats):
// 16 MiB whatever the training set size.
const simBudget = 1 << 22

// Predict classifies each of the nTest rows of test ([nTest×d]) against
// the training rows train ([len(trainY)×d], class trainY[i] in
// [0, numClasses)) and returns the predicted classes. Neither input is
// modified. With fewer training rows than K, all of them vote.
func (k KNN) Predict(train []float32, trainY []int, numClasses int, test []float32, d int) ([]int, error) {
	pred := make([]int, len(test)/max(d, 1))
	return pred, k.classify(train, trainY, numClasses, test, d, pred, nil)
}

// classify writes the predictions into pred and, when votes is not nil,
// the summed vote weights into votes ([nTest×numClasses]).
func (k KNN) classify(train []float32, trainY []int, numClasses int, test []float32, d int, pred []int, votes []float64) error {
	nTrain, nTest := len(trainY), len(pred)
	switch {
	case k.K < 1 || !(k.T > 0):
		return fmt.Errorf("knn: k %d and temperature %g must be positive", k.K, k.T)
	case d < 1 || len(train) != nTrain*d || len(test) != nTest*d:
		return fmt.Errorf("knn: %d train and %d test values do not hold %d and %d rows of %d", len(train), len(test), nTrain, nTest, d)
	case nTrain == 0:
		return fmt.Errorf("knn: no training rows")
	}
	kk := min(k.K, nTrain)
	tn := make([]float32, len(train))
	l2Normalize(tn, train, d)

	chunk := max(1, min(nTest, simBudget/nTrain))
	q := make([]float32, chunk*d)
	sim := make([]float32, chunk*nTrain)
	workers := max(1, min(runtime.GOMAXPROCS(0), chunk))
	type scratch struct {
		idx   []int
		val   []float32
		score []float64
	}
	sc := make([]scratch, workers)
	for w := range sc {
		sc[w] = scratch{make([]int, kk), make([]float32, kk), make([]float64, numClasses)}
	}
	invT := 1 / k.T
	var wg sync.WaitGroup
	for r0 := 0; r0 < nTest; r0 += chunk {
		m := min(chunk, nTest-r0)
		l2Normalize(q[:m*d], test[r0*d:(r0+m)*d], d)
		// sim[i][j] = <test_i, train_j>, on the project's GEMM.
		kernels.Gemm(false, true, m, nTrain, d, 1, q, d, tn, d, 0, sim, nTrain)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(s *scratch, lo, hi int) {
				defer wg.Done()
				for i := lo; i < hi; i++ {
					n := topK(s.idx, s.val, sim[i*nTrain:(i+1)*nTrain])
					clear(s.score)
					for j := 0; j < n; j++ {
						s.score[trainY[s.idx[j]]] += math.Exp(float64(s.val[j]) * invT)
					}
					best := 0
					for c, v := range s.score {
						if v > s.score[best] {
							best = c
						}
					}
					pred[r0+i] = best
					if votes != nil {
						copy(votes[(r0+i)*numClasses:], s.score)
					}
				}
			}(&sc[w], w*m/workers, (w+1)*m/workers)
		}
		wg.Wait()
	}
	return nil
}

// topK keeps the largest values of row in val (descending) with their
// indices in idx, len(idx) of them; an equal value does not displace an
// earlier one. It returns how many it kept.
func topK(idx []int, val []float32, row []float32) int {
	k, n := len(idx), 0
	for j, v := range row {
		if n == k && !(v > val[k-1]) {
			continue
		}
		p := min(n, k-1) // insertion point, from the end
		for p > 0 && v > val[p-1] {
			val[p], idx[p] = val[p-1], idx[p-1]
			p--
		}
		val[p], idx[p] = v, j
		if n < k {
			n++
		}
	}
	return n
}

// l2Normalize writes each row of src ([rows×d]) divided by its Euclidean
// norm into dst, as torch.nn.functional.normalize (norm floored at 1e-12).
func l2Normalize(dst, src []float32, d int) {
	for r := 0; r+d <= len(src); r += d {
		var s float64
		for _, v := range src[r : r+d] {
			s += float64(v) * float64(v)
		}
		inv := float32(1 / math.Max(math.Sqrt(s), 1e-12))
		for j, v := range src[r : r+d] {
			dst[r+j] = v * inv
		}
	}
}
