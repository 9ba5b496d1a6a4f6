package main

import "syscall"

// childAttr puts loopgate in its own process group (it is stopped in order
// by this program, not by a terminal's Ctrl+C) and has the kernel send it
// SIGTERM should this program die without stopping it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
