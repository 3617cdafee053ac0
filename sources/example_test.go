package sources_test

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/maeembed/maeembed/sources"
)

// Read a folder of images in lexicographic order, each item with its ack;
// the Reader counts what was acked.
func ExampleOpen() {
	r, err := sources.Open([]string{"../mae/testdata/fixtures/tiny32/images"}, sources.Options{})
	if err != nil {
		panic(err)
	}
	defer r.Close()
	for {
		it, err := r.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			panic(err)
		}
		fmt.Println(it.ID, it.Pos.Index, len(it.Data) > 0)
		it.Ack(nil) // its output is durable
	}
	st := r.Stats()
	fmt.Println(st.Emitted, "read,", st.Acked, "acked")
	// Output:
	// img_000.png 0 true
	// img_001.png 1 true
	// img_002.png 2 true
	// 3 read, 3 acked
}
