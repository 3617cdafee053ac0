// Package realpath is the one form of a local path that maeembed records
// and compares: the inputs an output was made from, the model it was made
// with, and the directories a walk has listed.
package realpath

import "path/filepath"

// Of returns p absolute with every symlink resolved, as realpath(3) does,
// so "m/", "./m" and a link to m give one path. Symlinks are resolved
// before ".." is applied ("link/.." is the link target's parent). The error
// is filepath.EvalSymlinks's (p missing, a loop, a directory that cannot be
// read) or filepath.Abs's.
func Of(p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	return filepath.Abs(real)
}
