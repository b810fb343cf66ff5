//go:build !unix

package render

import "io/fs"

// statIdentity names the file behind fi; size and time must do here.
func statIdentity(fs.FileInfo) string { return "" }

// ownedByMe cannot tell here: the directory's mode bits must do.
func ownedByMe(fs.FileInfo) bool { return true }

// ownedByMeOrRoot cannot tell here either.
func ownedByMeOrRoot(fs.FileInfo) bool { return true }
