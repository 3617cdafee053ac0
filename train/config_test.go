package train

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/config"
	"github.com/maeembed/maeembed/engine"
)

// pretrain's --workers has embed's bounds: a huge value is a usage error
// naming the flag.
func TestJobRefusesTooManyWorkers(t *testing.T) {
	c := DefaultConfig()
	c.Inputs, c.Output = []string{"in"}, t.TempDir()
	c.Workers = engine.MaxWorkers + 1
	_, err := c.Job(strings.NewReader(""), io.Discard)
	if !errors.Is(err, config.ErrUsage) || !strings.Contains(err.Error(), "--workers") {
		t.Errorf("--workers %d: err %v, want a usage error naming --workers", c.Workers, err)
	}
}
