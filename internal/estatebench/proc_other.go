//go:build !linux

package main

import "syscall"

// childAttr: loopgate is stopped by this program (the CPU and RSS figures
// read /proc and need Linux anyway).
func childAttr() *syscall.SysProcAttr { return nil }
