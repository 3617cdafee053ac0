package mae

import (
	"context"
	"github.com/maeembed/maeembed/mae/builtin"
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

// The dry run's check of the built-in model not unpacked yet (from its
// embedded config) says what the check of the unpacked files says.
func TestCheckPendingBuiltinMatchesUnpacked(t *testing.T) {
	cache := t.TempDir()
	for _, dec := range []bool{false, true} {
		s := Source{Name: builtin.Name, CacheDir: cache, NeedDecoder: dec}
		p, err := Check(context.Background(), s)
		if err != nil || p.Pending == nil {
			t.Fatalf("Check before unpacking: %+v, %v", p, err)
		}
		if _, err := builtin.Dir(cache); err != nil {
			t.Fatal(err)
		}
		u, err := Check(context.Background(), s)
		if err != nil || u.Pending != nil {
			t.Fatalf("Check after unpacking: %+v, %v", u, err)
		}
		if p.Config != u.Config || p.has != u.has || p.Path != u.Path {
			t.Errorf("pending %+v %+v %s\nunpacked %+v %+v %s", p.Config, p.has, p.Path, u.Config, u.has, u.Path)
		}
		cache = t.TempDir()
	}
}
