#!/usr/bin/env bash
# Benchmark of the fleet: a 16-image, 4-level tree whose steps sleep, built
# on real buildkitd processes with a real registry (started by the Go
# benchmark, as the tests start them), as medians of RUNS runs (default 3):
#   2v1       two builders of 2 jobs against one builder of 2 (target <= 0.6)
#   cache     a fresh builder with the registry cache against a cold build
#             (target <= 0.2)
#   critical  wall time with enough slots (two builders of 4) against the
#             tree's critical path in that run (target <= 1.2)
# SLEEP (default 4) is the seconds of each image's step.
#
# Needs a Docker daemon: run scripts/docker-up first. The first run builds
# buildkitd and the registry from the Go module proxy (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUNS=${RUNS:-3} SLEEP=${SLEEP:-4}
go test -run '^$' -bench '^BenchmarkFleet$' -benchtime 1x -timeout 60m -v ./cmd/docker-pkg |
	grep -E '^(Benchmark|    fleet_bench|ok|FAIL|---)'
