//go:build unix

package render

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// statIdentity names the file behind fi by device and inode.
func statIdentity(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return ""
}

// ownedByMe reports whether this process's user owns the file behind fi.
func ownedByMe(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}

// ownedByMeOrRoot reports whether this process's user or root owns the file
// behind fi.
func ownedByMeOrRoot(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && (st.Uid == 0 || int(st.Uid) == os.Getuid())
}
