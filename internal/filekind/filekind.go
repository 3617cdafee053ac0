// Package filekind names what a file is in words, for the errors that
// refuse what is not a regular file: "a named pipe (FIFO)", where the
// file mode would print as ls does ("p---------").
package filekind

import "io/fs"

// Of is the kind of a file of mode m, with its article: "a regular file",
// "a directory", "a symbolic link", "a named pipe (FIFO)", "a socket",
// "a character device", "a block device" or "an irregular file".
func Of(m fs.FileMode) string {
	switch t := m.Type(); {
	case t == 0:
		return "a regular file"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeDevice != 0:
		return "a block device"
	}
	return "an irregular file"
}
