package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/maeembed/maeembed/pipeline"
)

// Three stages: a source, an ordered map with four workers and a sink.
// Outputs keep input order whatever worker finishes first.
func ExampleMap() {
	p := pipeline.New(context.Background(), pipeline.Options{})
	words := strings.Fields("the first signal drains the second aborts")
	i := 0
	in := pipeline.Source(p, "read", 2, func(ctx context.Context) (string, error) {
		if i == len(words) {
			return "", io.EOF
		}
		i++
		return words[i-1], nil
	})
	upper := pipeline.Map(p, "upper", in, pipeline.Config{Workers: 4, Ordered: true}, func(ctx context.Context, w string) (string, error) {
		return strings.ToUpper(w), nil
	})
	var out []string
	pipeline.Sink(p, "write", upper, 1, func(ctx context.Context, w string) error {
		out = append(out, w)
		return nil
	})
	if err := p.Wait(); err != nil {
		panic(err)
	}
	fmt.Println(strings.Join(out, " "))
	// Output: THE FIRST SIGNAL DRAINS THE SECOND ABORTS
}
