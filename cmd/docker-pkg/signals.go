package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// interruptible returns the context of the run: the first SIGINT or
// SIGTERM cancels it, so the run stops what it is doing and cleans up (a
// test's processes get SIGTERM then SIGKILL, containers and build contexts
// are removed); a second one ends the program at once, with status 130,
// killing the process groups of its children first (the tests being run)
// but leaving the rest: the next build removes the contexts left.
func interruptible(stderr io.Writer) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-signals
		fmt.Fprintln(stderr, "docker-pkg: interrupted, cleaning up (interrupt again to quit at once)")
		cancel()
		<-signals
		killChildren()
		os.Exit(130)
	}()
	return ctx
}

// killChildren sends SIGKILL to every child process and to its process
// group: a test runs in a group of its own, which would otherwise outlive
// a forced exit. Linux only (it reads /proc); elsewhere it does nothing.
func killChildren() {
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(self) {
			continue
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
