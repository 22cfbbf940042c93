#!/usr/bin/env bash
# Soak test of build under kill -9 (not run in CI). KILLS times (default 50),
# start `docker-pkg build --jobs 2` on a copy of fixtures/ whole (images/ and
# failing/, where legacy-app fails its test) and kill it with
# SIGKILL after a random delay of 0 to MAX_DELAY seconds (default 20): while
# it scans, builds or runs a test. Four rounds in five start from no image
# built; the fifth goes on from what the killed run left (images built but
# never verified among them). Then one last build runs to the end.
#
# It ends with, and checks:
#   - no docker-pkg-ctx-* folder left in its TMPDIR (each build start removes
#     those of killed runs);
#   - no container left of the soak's images: every image and container of
#     the soak descends from a base image with a label of its own;
#   - after the last build, plan says the 7 images of images/ built and
#     legacy-app to_build (its test fails on purpose), and no image is tagged
#     -unverified: none counts as built without its test passing.
# Prints, for the kills: how many hit an image being built or tested, the
# contexts and unverified images each left, and how long the containers of
# killed tests took to go.
#
# Needs a Docker daemon and the fixtures' base image: run scripts/docker-up
# first. Environment: KILLS (default 50), MAX_DELAY (seconds, default 20).
set -euo pipefail
cd "$(dirname "$0")/.."

kills=${KILLS:-50}
max_delay=${MAX_DELAY:-20}
ns=dpkg-soak-build
. bench/common.sh

# The soak's own base: its label is on every image and container built or
# run from it.
printf 'FROM %s\nLABEL org.docker-pkg.soak=%s\n' "$base" "$ns" |
	DOCKER_BUILDKIT=0 docker build -q -t "$ns/busybox:static" - >/dev/null
containers() { docker ps -aq --filter "label=org.docker-pkg.soak=$ns" | wc -l; }
unverified() { docker images --format '{{.Tag}}' "$ns/*" | { grep -c -- '-unverified$' || true; }; }

tree=$work/tree
tmp=$work/tmp
mkdir -p "$tmp"
cp -r fixtures "$tree"
sed -i -e "s|^namespace: .*|namespace: $ns|" -e "s|^  - $base\$|  - $ns/busybox:static|" "$tree/config.yaml"
export TMPDIR=$tmp XDG_CONFIG_HOME=$work/xdg XDG_CACHE_HOME=$work/xdg CI=true

# build runs docker-pkg itself (exec), so $! of `build &` is its PID.
build() { cd "$tree" && exec "$work/docker-pkg" -c config.yaml build --jobs 2 .; }

echo "soak: $kills kills, each after 0-${max_delay}s, $(nproc) CPUs" >&2
in_build=0 in_test=0 idle=0 ended=0 left_max=0 left_total=0 not_removed=0 marks=0
start=$(date +%s)
for ((r = 1; r <= kills; r++)); do
	((r % 5 == 0)) || remove_images
	before=$(find "$tmp" -maxdepth 1 -name 'docker-pkg-ctx-*' | wc -l)
	(build >"$work/out" 2>"$work/err") &
	pid=$!
	sleep "$(awk -v m="$max_delay" -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", rand() * m }')"
	kill -9 "$pid" 2>/dev/null || true
	st=0
	wait "$pid" 2>/dev/null || st=$?
	if ((st != 137)); then # not killed: it had ended, with status st
		ended=$((ended + 1))
		echo "soak: kill $r: pid $pid had ended (status $st)" >&2
		continue
	fi
	# What was running: an image "building" is being built, one "built" is
	# being tested.
	read -r b v < <(awk '/^\[[^]]+\] [a-z]+/ { name = $1; state[name] = $2 }
		END { b = 0; v = 0; for (n in state) { if (state[n] == "building") b++; if (state[n] == "built") v++ } print b, v }' "$work/err")
	((b > 0)) && in_build=$((in_build + 1))
	((v > 0)) && in_test=$((in_test + 1))
	((b == 0 && v == 0)) && idle=$((idle + 1))
	left=$(find "$tmp" -maxdepth 1 -name "docker-pkg-ctx-$pid-*" | wc -l)
	left_total=$((left_total + left))
	((left > left_max)) && left_max=$left
	# The contexts of earlier kills must be gone once a build has started.
	if ((before > 0)) && grep -q '^\[' "$work/err"; then
		stale=$(find "$tmp" -maxdepth 1 -name 'docker-pkg-ctx-*' ! -name "docker-pkg-ctx-$pid-*" | wc -l)
		not_removed=$((not_removed + stale))
	fi
	m=$(unverified)
	marks=$((marks + m))
	echo "soak: kill $r: pid $pid, building $b, testing $v, contexts left $left, images unverified $m" >&2
done
kill_time=$(($(date +%s) - start))

status=0
(build >"$work/out" 2>"$work/err") || status=$?
drain_start=$(date +%s)
for _ in $(seq 120); do
	(($(containers) == 0)) && break
	sleep 1
done
drain=$(($(date +%s) - drain_start))
contexts=$(find "$tmp" -maxdepth 1 -name 'docker-pkg-ctx-*' | wc -l)
left_containers=$(containers)
verified=$(awk '$2 == "verified"' "$work/out" | wc -l)
plan=$(cd "$tree" && "$work/docker-pkg" -c config.yaml plan . 2>/dev/null || true)
built=$(awk '$2 == "built"' <<<"$plan" | wc -l)
legacy=$(awk '$3 ~ /\/legacy-app:/ { print $2 }' <<<"$plan")
unverified=$(unverified)

echo "kills: $kills in ${kill_time}s: $in_build while an image was being built, $in_test while one was being tested, $idle before any image started or after the last ended, $ended too late (the build had ended)"
echo "left by the killed runs: $left_total context folders (at most $left_max by one), $marks images tagged -unverified; contexts not removed by the next build: $not_removed"
echo "last build: exit status $status, $verified images built and verified by it; then plan: $built built, legacy-app $legacy"
echo "at the end: $contexts context folders, $left_containers containers (after ${drain}s), $unverified images tagged -unverified"
ok=1
((contexts == 0 && left_containers == 0 && not_removed == 0)) || ok=0
((status == 1 && built == 7 && unverified == 0)) || ok=0
[[ $legacy == to_build ]] || ok=0
if ((ok)); then
	echo "soak: PASS"
else
	echo "soak: FAIL" >&2
	tail -40 "$work/err" >&2
	exit 1
fi
