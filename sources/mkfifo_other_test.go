//go:build !unix

package sources

import (
	"errors"
	"testing"
)

func mkfifo(string) error { return errors.ErrUnsupported }

func asNobody(t *testing.T, test string) { t.Skip("needs unix") }
