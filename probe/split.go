package probe

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// newRand is the one seeded generator of the package (split, head init,
// epoch shuffles), so a seed reproduces a whole run.
func newRand(seed, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream))
}

// Streams of newRand.
const (
	streamSplit uint64 = iota + 1
	streamInit
	streamShuffle
)

// Split is a stratified train/test split of the rows of y (classes in
// [0, numClasses)): within each class, rows are shuffled with the seed and
// round(n·testFraction) of them go to test, at least one when the class has
// two or more rows and never all of them (a class with one row is train
// only). Both lists are in ascending row order. testFraction must lie in
// (0, 1).
func Split(y []int, numClasses int, testFraction float64, seed uint64) (train, test []int, err error) {
	if !(testFraction > 0 && testFraction < 1) {
		return nil, nil, fmt.Errorf("test fraction %g: want a value in (0, 1)", testFraction)
	}
	byClass := make([][]int, numClasses)
	for i, c := range y {
		if c < 0 || c >= numClasses {
			return nil, nil, fmt.Errorf("row %d: class %d outside [0, %d)", i, c, numClasses)
		}
		byClass[c] = append(byClass[c], i)
	}
	r := newRand(seed, streamSplit)
	train = make([]int, 0, len(y))
	test = make([]int, 0, int(float64(len(y))*testFraction)+numClasses)
	for _, rows := range byClass {
		n := len(rows)
		if n == 0 {
			continue
		}
		r.Shuffle(n, func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		nt := int(math.Round(float64(n) * testFraction))
		nt = max(nt, min(n-1, 1))
		nt = min(nt, n-1)
		test = append(test, rows[:nt]...)
		train = append(train, rows[nt:]...)
	}
	if len(test) == 0 {
		return nil, nil, fmt.Errorf("no class has two rows: nothing to test on")
	}
	sort.Ints(train)
	sort.Ints(test)
	return train, test, nil
}
