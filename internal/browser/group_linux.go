package browser

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// inGroup starts cmd in a process group of its own, killed whole when the
// command's context ends.
func inGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Chromium's helpers may keep stdout open after the browser exits.
	cmd.WaitDelay = 5 * time.Second
}

// killGroup kills process group pgid and waits up to wait for its last
// process to be gone (zombies waiting for init to reap them count as gone).
func killGroup(pgid int, wait time.Duration) error {
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing chromium's process group %d: %w", pgid, err)
	}
	deadline := time.Now().Add(wait)
	for {
		left := GroupAlive(pgid)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chromium processes %v of group %d still running after SIGKILL", left, pgid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// GroupAlive lists the processes of group pgid that are not zombies.
func GroupAlive(pgid int) []int {
	return live(func(pid, pgrp int) bool { return pgrp == pgid })
}

// Running lists the live processes of every Chromium this process started
// through this package, in any group: those still running after their run
// ended have escaped it.
func Running() []int {
	marker := []byte("--user-data-dir=" + filepath.Join(os.TempDir(), profilePrefix()))
	return live(func(pid, _ int) bool {
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		return err == nil && bytes.Contains(cmdline, marker)
	})
}

// live lists the processes, zombies left out, for which match is true.
func live(match func(pid, pgrp int) bool) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if pgrp, _ := strconv.Atoi(f[2]); match(pid, pgrp) {
			out = append(out, pid)
		}
	}
	return out
}
