package chaos

import "syscall"

// sysProcAttr puts a node in its own process group and has the kernel
// SIGKILL it if the harness dies without cleaning up (the parent-death
// signal follows the thread that started the child; Go keeps its threads
// for the life of the process).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
