#!/usr/bin/env bash
# Knowing what to build, side by side with the reference docker-pkg 4.0.4
# (../shared/reference/docker-pkg, Python; its Debian packages are installed
# here if missing: they are never a dependency of the project).
#
# On the same tree, with the same daemon state (every image built, by
# docker-pkg), it times:
#   plan:  reference `build --no-pull --select <nothing>` against our
#          `plan --no-pull` (both scan, render and ask the daemon about
#          every image, and build nothing);
#   no-op: reference `build` against our `build`, nothing to do;
# on the fixtures and on a generated tree of 200 images (8 levels). No
# registry is configured: the daemon's state is the whole question.
# Prints the median of RUNS runs (default 7, after one warm-up) and the
# ratios; targets: plan >= 30x, no-op >= 5x.
#
# Needs a Docker daemon and the fixtures' base image: run scripts/docker-up.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-7}
ref=${REFERENCE:-../shared/reference/docker-pkg}
ns=dpkg-bench-plan
. bench/common.sh

pkgs=(python3-jinja2 python3-yaml python3-debian python3-docker python3-requests python3-attr)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "bench: installing ${missing[*]} for the reference" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[[ -x $ref ]] || {
	echo "bench: no reference docker-pkg at $ref" >&2
	exit 1
}
ref=$(realpath "$ref") # the comparisons run in a scratch directory

# median_ms runs a command RUNS times (after one warm-up), quietly, and
# prints the median wall time in milliseconds.
median_ms() {
	local times=() i start end
	"$@" >/dev/null 2>&1 || true
	for ((i = 0; i < runs; i++)); do
		start=$EPOCHREALTIME
		"$@" >/dev/null 2>&1 || true
		end=$EPOCHREALTIME
		times+=("$(echo "($end - $start) * 1000" | bc)")
	done
	printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'
}

# generate writes a tree of n images in levels under $1: level 1 is FROM the
# base, every other image FROM one image of the level above (image_tag, as
# real trees do), with a Depends line and an apt_install of nothing.
generate() {
	local root=$1 n=$2 levels=$3 i name parent
	local per=$(((n + levels - 1) / levels))
	for ((i = 0; i < n; i++)); do
		name=$(printf 'img-%03d' "$i")
		mkdir -p "$root/$name"
		if ((i < per)); then
			parent=busybox
		else
			parent=$(printf 'img-%03d' $((i - per)))
			printf 'Source: %s\nDepends: %s\n' "$name" "$parent" >"$root/$name/control"
		fi
		cat >"$root/$name/Dockerfile.template" <<EOF
FROM {{ "$parent" | image_tag }}
{% set pkgs = ["curl", "ca-certificates"] %}
{% if http_proxy is defined and http_proxy %}ENV http_proxy={{ http_proxy }}{% endif %}
LABEL bench.name="$name" bench.packages="{{ pkgs | join(' ') }}"
USER {{ "nobody" | uid }}
EOF
		printf '%s (1.0.%d-1) wikimedia; urgency=medium\n\n  * Benchmark image.\n\n -- Bench <bench@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n' \
			"$name" "$i" >"$root/$name/changelog"
	done
}

# compare builds the tree at $1 with config $2 (every image built), then
# times both tools on it and prints one line per comparison.
compare() {
	local what=$1 dir=$2 cfg=$3
	"$work/docker-pkg" -c "$cfg" build --jobs 2 --use-cache "$dir" >"$work/build.log" 2>&1 || {
		echo "bench: building $dir failed; see $work/build.log" >&2
		tail -20 "$work/build.log" >&2
		exit 1
	}
	local ref_plan our_plan ref_noop our_noop
	ref_plan=$(median_ms "$ref" -c "$cfg" build --no-pull --select 'no-such-image' "$dir")
	our_plan=$(median_ms "$work/docker-pkg" -c "$cfg" plan --no-pull "$dir")
	ref_noop=$(median_ms "$ref" -c "$cfg" build "$dir")
	our_noop=$(median_ms "$work/docker-pkg" -c "$cfg" build "$dir")
	printf '%-22s plan: reference %8.1f ms, ours %7.1f ms, %5.1fx   no-op build: reference %8.1f ms, ours %7.1f ms, %5.1fx\n' \
		"$what" "$ref_plan" "$our_plan" "$(echo "$ref_plan / $our_plan" | bc -l)" \
		"$ref_noop" "$our_noop" "$(echo "$ref_noop / $our_noop" | bc -l)"
}

# The reference's wrapper makes a folder for its XDG_CONFIG_HOME at every
# call unless given one: one, in $work, for them all.
export DOCKER_PKG_REF_XDG=$work/ref-xdg
mkdir "$DOCKER_PKG_REF_XDG"
cd "$work"
# The fixtures, in this namespace so that cleaning up removes them.
cp -r "$OLDPWD/fixtures" fixtures
sed -i "s|^namespace: .*|namespace: $ns|; s|docker-pkg-fixtures/busybox:static|$ns/busybox:static|" fixtures/config.yaml
# legacy-app fails its test on purpose: drop it where it still is.
rm -rf fixtures/images/legacy-app fixtures/images/*/legacy-* 2>/dev/null || true
compare "fixtures" fixtures/images fixtures/config.yaml

generate "$work/gen" 200 8
cat >"$work/gen.yaml" <<EOF
namespace: $ns
base_images: [$ns/busybox:static]
EOF
compare "generated, 200 images" gen gen.yaml
