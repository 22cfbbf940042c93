#!/usr/bin/env bash
# Benchmark of the parallel build: wall time of
#   docker-pkg build --jobs 1
#   docker-pkg build --jobs 2
#   a plain sequential loop of `docker build` over the same Dockerfiles,
#   in topological order (the classic builder, as docker-pkg uses)
# on a generated tree of 16 images in 4 levels, each RUN hashing a few
# hundred MB of zeros (about 1.5 s of CPU). Every run starts with none of the
# images built and uses no build cache. Prints the median of RUNS runs of
# each and the ratios; targets: jobs 2 <= 0.65 x jobs 1, and jobs 1 within 5%
# of the plain loop.
#
# Needs a Docker daemon and its busybox base: run scripts/docker-up first.
# Environment: RUNS (default 3), MB per image (default 200), WIDTH images per
# level (default 4), LEVELS (default 4), WORK=sleep to replace the hashing by
# `sleep SLEEP` (default 1.5): the scheduler's parallelism alone, on a
# machine whose CPUs are busy elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-3}
mb=${MB:-200}
width=${WIDTH:-4}
levels=${LEVELS:-4}
ns=dpkg-bench
. bench/common.sh
cat >"$work/config.yaml" <<EOF
namespace: $ns
base_images: [$ns/busybox:static]
EOF

# Image l{L}i{I} is built FROM l{L-1}i{I} and also depends on l{L-1}i{I+1}:
# each level needs the whole level above it before it can all run.
order=()
for ((l = 1; l <= levels; l++)); do
	for ((i = 1; i <= width; i++)); do
		name=l${l}i${i}
		order+=("$name")
		dir=$work/images/$name
		mkdir -p "$dir" "$work/rendered/$name"
		if ((l == 1)); then
			parent=busybox
			depends=
		else
			parent=l$((l - 1))i$i
			depends="$parent, l$((l - 1))i$((i % width + 1))"
		fi
		if [[ ${WORK:-hash} == sleep ]]; then
			run="RUN sleep ${SLEEP:-1.5} && echo $name > /sum-$name"
		else
			run="RUN dd if=/dev/zero bs=1M count=$mb 2>/dev/null | sha256sum > /sum-$name && echo $name"
		fi
		printf 'FROM {{ "%s" | image_tag }}\n%s\n' "$parent" "$run" >"$dir/Dockerfile.template"
		# The same Dockerfile, rendered, for the plain loop.
		tag=1.0-1
		[[ $parent == busybox ]] && tag=static
		printf 'FROM %s/%s:%s\n%s\n' "$ns" "$parent" "$tag" "$run" >"$work/rendered/$name/Dockerfile"
		printf '%s (1.0-1) wikimedia; urgency=medium\n\n  * Benchmark image.\n\n -- Bench <bench@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n' \
			"$name" >"$dir/changelog"
		[[ -n $depends ]] && printf 'Source: %s\nDepends: %s\n' "$name" "$depends" >"$dir/control"
	done
done

# elapsed CMD... runs CMD from $work with no image of the tree built and
# prints its wall time in seconds.
elapsed() {
	remove_images
	local start end
	start=$(date +%s.%N)
	if ! (cd "$work" && "$@" >"$work/last.out" 2>&1); then
		echo "bench: $* failed:" >&2
		tail -30 "$work/last.out" >&2
		exit 1
	fi
	end=$(date +%s.%N)
	echo "$end - $start" | bc
}

plain_loop() {
	local name
	for name in "${order[@]}"; do
		DOCKER_BUILDKIT=0 docker build -q --no-cache --rm --force-rm -t "$ns/$name:1.0-1" \
			-f "rendered/$name/Dockerfile" "images/$name" >/dev/null
	done
}

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo "bench: ${#order[@]} images in $levels levels, work ${WORK:-hash} ($mb MB or ${SLEEP:-1.5}s), $runs runs each, $(nproc) CPUs" >&2

# What the machine can do in parallel at all: two CPU loops at once take
# 1x one loop on two free cores, 2x when only one core's worth is free.
spin() { awk 'BEGIN { for (i = 0; i < 3000000; i++) s += i * i }'; }
cpu_ratio() {
	local t0 t1 t2
	t0=$(date +%s.%N)
	spin
	t1=$(date +%s.%N)
	spin &
	spin
	wait
	t2=$(date +%s.%N)
	echo "($t2 - $t1) / ($t1 - $t0)" | bc -l
}
elapsed plain_loop >/dev/null # warm-up: page cache, daemon
cpu_before=$(cpu_ratio)
j1=() j2=() loop=()
for ((r = 1; r <= runs; r++)); do
	j1+=("$(elapsed ./docker-pkg -c config.yaml build --jobs 1 images)")
	j2+=("$(elapsed ./docker-pkg -c config.yaml build --jobs 2 images)")
	loop+=("$(elapsed plain_loop)")
	echo "bench: run $r: jobs 1 ${j1[-1]}s, jobs 2 ${j2[-1]}s, plain loop ${loop[-1]}s" >&2
done
cpu_after=$(cpu_ratio)
m1=$(printf '%s\n' "${j1[@]}" | median)
m2=$(printf '%s\n' "${j2[@]}" | median)
ml=$(printf '%s\n' "${loop[@]}" | median)
printf 'median wall time: docker-pkg --jobs 1 %.1fs, --jobs 2 %.1fs, plain docker build loop %.1fs\n' "$m1" "$m2" "$ml"
printf 'jobs 2 / jobs 1 = %.2f (target <= 0.65)\n' "$(echo "$m2 / $m1" | bc -l)"
printf 'jobs 1 / plain loop = %.3f (target <= 1.05)\n' "$(echo "$m1 / $ml" | bc -l)"
printf 'machine: two CPU loops at once take %.2fx, then %.2fx one (1.00 with two free cores, 2.00 with one)\n' "$cpu_before" "$cpu_after"
