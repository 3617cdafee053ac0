package mae

import (
	"context"
	"strings"
	"testing"
)

// A model name that is neither a file nor a preset lists every name that
// works, the built-in model's first.
func TestResolveNamesTheChoices(t *testing.T) {
	_, err := Resolve(context.Background(), Source{Name: "vit_tiny", CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), `not builtin (the built-in model) nor a preset (presets: `) || !strings.Contains(err.Error(), "mae_vit_base_patch16") {
		t.Errorf("err = %v", err)
	}
}
