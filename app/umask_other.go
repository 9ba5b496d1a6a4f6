//go:build !unix

package app

// privateFiles is a no-op where there is no umask.
func privateFiles() {}
