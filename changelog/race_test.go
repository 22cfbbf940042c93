//go:build race

package changelog

// raceEnabled: the race detector reserves terabytes of address space, so
// no test can run under `ulimit -v`.
const raceEnabled = true
