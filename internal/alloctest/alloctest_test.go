package alloctest

import (
	"runtime"
	"sync"
	"testing"
)

var sink []byte

// A pooled buffer is reused (0 per run); a make under the call, in a
// worker goroutine of a named function, or a pool whose buffers are not put
// back is counted; a goroutine allocating elsewhere is not.
func TestPerRun(t *testing.T) {
	if Race {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	pool := sync.Pool{New: func() any { return new([64]byte) }}
	pooled := func() { b := pool.Get().(*[64]byte); b[0]++; pool.Put(b) }
	leaky := func() { b := pool.Get().(*[64]byte); b[0]++ }
	direct := func() { sink = make([]byte, 100) }
	// A long-lived worker, as the kernels keep: starting a goroutine per
	// call would itself allocate.
	work, done := make(chan struct{}), make(chan struct{})
	go worker(work, done)
	defer close(work)
	inWorker := func() { work <- struct{}{}; <-done }
	// Another goroutine allocating all the time is not counted.
	stop := make(chan struct{})
	defer close(stop)
	go noise(stop)
	for _, c := range []struct {
		name string
		f    func()
		want float64
	}{
		{"pooled", pooled, 0},
		{"leaky pool", leaky, 1},
		{"make", direct, 1},
		{"worker", inWorker, 1},
	} {
		if got := PerRun(10, c.f, pkgPath+".worker"); got != c.want {
			t.Errorf("%s: %v allocations per run, want %v", c.name, got, c.want)
		}
	}
}

func worker(work <-chan struct{}, done chan<- struct{}) {
	for range work {
		workerSink = make([]byte, 200)
		done <- struct{}{}
	}
}

var workerSink []byte

func noise(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
			noiseSink = make([]byte, 300)
			runtime.Gosched()
		}
	}
}

var noiseSink []byte
