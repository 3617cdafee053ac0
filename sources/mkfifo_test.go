//go:build unix

package sources

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

func mkfifo(path string) error { return syscall.Mkfifo(path, 0o644) }

// asNobody reruns test in this test binary as user nobody, for tests about
// permissions that root would bypass.
func asNobody(t *testing.T, test string) {
	t.Helper()
	if os.Getenv("MAEEMBED_TEST_AS_NOBODY") != "" {
		t.Fatal("still root after dropping privileges")
	}
	// The test binary and a scratch directory where nobody can reach them.
	dir := t.TempDir()
	bin := filepath.Join(dir, "test.bin")
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^"+test+"$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MAEEMBED_TEST_AS_NOBODY=1", "TMPDIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	t.Logf("as nobody:\n%s", out)
}
