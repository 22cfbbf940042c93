#!/usr/bin/env bash
# Benchmark of the two builders: wall time of
#   docker-pkg build --builder classic
#   docker-pkg build --builder buildkit
# on a fresh copy of the fixtures tree (fixtures/images: 7 images, a build
# stage, a multi-stage build, every test run; each run must end with exit
# status 0 and 7 images verified).
# Every run starts with none of the tree's images built and uses no build
# cache (docker-pkg's default). One warm-up run of each is not counted.
# Prints the median of RUNS runs of each and the ratio.
#
# Needs a Docker daemon and the fixtures' base image: run scripts/docker-up
# first. Environment: RUNS (default 3), JOBS (--jobs, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-3}
jobs=${JOBS:-2}
ns=dpkg-bench-builders
. bench/common.sh

# elapsed BUILDER builds a fresh copy of the fixtures tree with BUILDER and
# prints its wall time in seconds.
elapsed() {
	remove_images
	rm -rf "$work/tree"
	cp -r fixtures "$work/tree"
	sed -i -e "s|^namespace: .*|namespace: $ns|" -e "s|^  - $base\$|  - $ns/busybox:static|" "$work/tree/config.yaml"
	local start end status=0
	start=$(date +%s.%N)
	(cd "$work/tree" && ../docker-pkg -c config.yaml build --builder "$1" --jobs "$jobs" images >"$work/last.out" 2>&1) || status=$?
	end=$(date +%s.%N)
	local built
	built=$(grep -c "^$ns/[^ ]* *verified " "$work/last.out" || true)
	if ((status != 0 || built != 7)); then
		echo "bench: build --builder $1 ended with status $status and $built images verified, want 0 and 7:" >&2
		tail -30 "$work/last.out" >&2
		exit 1
	fi
	echo "$end - $start" | bc
}

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo "bench: fixtures tree, --jobs $jobs, $runs runs each, $(nproc) CPUs" >&2
elapsed classic >/dev/null # warm-up: page cache, daemon
elapsed buildkit >/dev/null
classic=() buildkit=()
for ((r = 1; r <= runs; r++)); do
	classic+=("$(elapsed classic)")
	buildkit+=("$(elapsed buildkit)")
	echo "bench: run $r: classic ${classic[-1]}s, buildkit ${buildkit[-1]}s" >&2
done
mc=$(printf '%s\n' "${classic[@]}" | median)
mk=$(printf '%s\n' "${buildkit[@]}" | median)
printf 'median wall time of the fixtures build: classic %.1fs, buildkit %.1fs\n' "$mc" "$mk"
printf 'buildkit / classic = %.2f\n' "$(echo "$mk / $mc" | bc -l)"
