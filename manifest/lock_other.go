//go:build !unix

package manifest

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"
)

// lockFile takes a lock by creating path exclusively, polling so that ctx can cancel the wait.
// Unlike flock on unix, a lock left by a crashed process stays until someone removes the file.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	path += ".excl"
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			_ = f.Close()
			return func() { _ = os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
