//go:build unix

package app

import "syscall"

// privateFiles makes every file the process creates from now on private to
// its user (umask 077): the store, the embedded clusters' data and
// credentials, whatever a library writes, whatever the mode of the data dir.
func privateFiles() { syscall.Umask(0o077) }
