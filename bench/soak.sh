#!/usr/bin/env bash
# Soak test of writing changelogs (not run by CI): on a copy of
# fixtures/images,
#   ROUNDS rounds of two concurrent `update`s (runtime, 5 changelogs, and
#     app, 2 of the same changelogs), then
#   KILLS `update runtime`s each killed with kill -9 at a random moment
#     (DOCKER_PKG_TEST_STEP_DELAY slows every write step so the kills land
#     in every phase: before the lock, scanning, staging, renaming, done),
#     each followed by an update that must finish or roll back the killed
#     one,
# and checks that every changelog parses (plan scans them all), no entry is
# lost (every reason of a run that exited 0 is in exactly the changelogs of
# its cascade; a killed run's reason is in all of them or none), versions
# strictly decrease down every changelog (dpkg --compare-versions), and no
# temporary file, journal or lock file is left. Prints the figures.
#
# Then, with a Docker daemon, bench/soak-build.sh: BUILD_KILLS (default 50)
# builds of the fixtures killed with kill -9, ending with no build context
# and no container left (BUILD_KILLS=0 skips it).
#
# The update part needs no Docker daemon. Environment: ROUNDS (default 50),
# KILLS (default 50), DELAY (per step, default 20ms), KILL_MS (kill within
# 0..KILL_MS ms of the start, default 400), BUILD_KILLS (default 50).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${ROUNDS:-50}
kills=${KILLS:-50}
delay=${DELAY:-20ms}
kill_ms=${KILL_MS:-400}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/docker-pkg" ./cmd/docker-pkg
cp -r fixtures/images "$work/images"
tree=$work/images
docker_host=${DOCKER_HOST-} # the build soak's daemon
export DEBFULLNAME="Soak Test" DEBEMAIL=soak@example.org
export DOCKER_HOST=unix://$work/no-daemon.sock XDG_CONFIG_HOME=$work/config
# An array, not a function: kill -9 must reach docker-pkg itself, not a
# subshell around it.
dp=("$work/docker-pkg" -c fixtures/config.yaml)

runtime_cascade="app/changelog app/plugins/app-plugin/changelog ci-runner/changelog runtime/changelog"
app_cascade="app/changelog app/plugins/app-plugin/changelog"

# holding MARKER lists, sorted on one line, the changelogs with an entry
# whose reason line is MARKER.
holding() {
	(cd "$tree" && { grep -rlx --include=changelog "   $1" . || true; } | sed 's|^\./||' | sort | tr '\n' ' ' | sed 's/ $//')
}

failures=0
fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# Two concurrent updates per round.
ok=0 waited=0
start=$(date +%s.%N)
for ((i = 1; i <= rounds; i++)); do
	"${dp[@]}" update --reason "A$i" runtime "$tree" >"$work/a.out" 2>"$work/a.err" &
	a=$!
	"${dp[@]}" update --reason "B$i" app "$tree" >"$work/b.out" 2>"$work/b.err" &
	b=$!
	for p in "$a" "$b"; do
		if wait "$p"; then ok=$((ok + 1)); else fail "round $i: an update failed: $(cat "$work/a.err" "$work/b.err")"; fi
	done
	waited=$((waited + $(cat "$work/a.err" "$work/b.err" | grep -c 'docker-pkg: waiting for' || true)))
done
concurrent_s=$(echo "$(date +%s.%N) - $start" | bc)
for ((i = 1; i <= rounds; i++)); do
	[[ $(holding "A$i") == "$runtime_cascade" ]] || fail "A$i is in [$(holding "A$i")]"
	[[ $(holding "B$i") == "$app_cascade" ]] || fail "B$i is in [$(holding "B$i")]"
done

# kill -9 at a random moment.
killed=0 completed=0 landed=0 rolled_back=0 finished=0 removed=0
start=$(date +%s.%N)
for ((i = 1; i <= kills; i++)); do
	DOCKER_PKG_TEST_STEP_DELAY=$delay "${dp[@]}" update --reason "K$i" runtime "$tree" >/dev/null 2>"$work/k.err" &
	k=$!
	sleep "$(printf '0.%03d' $((RANDOM % kill_ms)))"
	kill -9 "$k" 2>/dev/null || true
	status=0
	wait "$k" 2>/dev/null || status=$?
	# The next update repairs and adds its own entry.
	if ! "${dp[@]}" update --reason "N$i" runtime "$tree" >/dev/null 2>"$work/n.err"; then
		fail "update after kill $i: $(cat "$work/n.err")"
	fi
	grep -q 'finished an update interrupted' "$work/n.err" && finished=$((finished + 1))
	grep -q 'removed [0-9]* temporary files' "$work/n.err" && removed=$((removed + 1))
	got=$(holding "K$i")
	if ((status == 137)); then
		killed=$((killed + 1))
		case $got in
		"$runtime_cascade") landed=$((landed + 1)) ;;
		"") rolled_back=$((rolled_back + 1)) ;;
		*) fail "killed K$i is in [$got]: a partial cascade" ;;
		esac
	else
		completed=$((completed + 1))
		[[ $status == 0 && $got == "$runtime_cascade" ]] || fail "K$i exited $status and is in [$got]"
	fi
	[[ $(holding "N$i") == "$runtime_cascade" ]] || fail "N$i is in [$(holding "N$i")]"
done
kill_s=$(echo "$(date +%s.%N) - $start" | bc)

# Every changelog parses; versions strictly decrease; nothing left.
"${dp[@]}" plan "$tree" >/dev/null 2>"$work/plan.err" || fail "plan: $(cat "$work/plan.err")"
entries=0
while IFS= read -r log; do
	mapfile -t versions < <(sed -n 's/^[^ ].* (\([^)]*\)) .*/\1/p' "$log")
	entries=$((entries + ${#versions[@]}))
	for ((j = 1; j < ${#versions[@]}; j++)); do
		dpkg --compare-versions "${versions[j - 1]}" gt "${versions[j]}" ||
			fail "$log: ${versions[j - 1]} above ${versions[j]}"
	done
done < <(find "$tree" -name changelog -type f)
left=$(find "$tree" -name '.changelog.docker-pkg-*.tmp' -o -name '.docker-pkg.*' | wc -l)
((left == 0)) || fail "$left files of docker-pkg left: $(find "$tree" -name '.changelog.docker-pkg-*.tmp' -o -name '.docker-pkg.*')"

runtime_entries=$(grep -c '^runtime (' "$tree/runtime/changelog")
expected_runtime=$(($(grep -c '^runtime (' fixtures/images/runtime/changelog) + rounds + completed + landed + kills))
((runtime_entries == expected_runtime)) || fail "runtime has $runtime_entries entries, want $expected_runtime"

printf 'concurrent: %d rounds, %d of %d updates exited 0, %d waited for the other, %.1f s\n' \
	"$rounds" "$ok" $((2 * rounds)) "$waited" "$concurrent_s"
printf 'kill -9: %d runs, %d killed (%d landed whole, %d rolled back), %d finished before the kill; the next update finished %d journals and removed temporary files %d times; %.1f s\n' \
	"$kills" "$killed" "$landed" "$rolled_back" "$completed" "$finished" "$removed" "$kill_s"
printf 'end: %d entries in %d changelogs, all parse, versions strictly decrease; %d files of docker-pkg left; %d failures\n' \
	"$entries" "$(find "$tree" -name changelog -type f | wc -l)" "$left" "$failures"

# kill -9 during build.
if ((${BUILD_KILLS:-50} > 0)); then
	(
		unset DOCKER_HOST XDG_CONFIG_HOME
		[[ -n $docker_host ]] && export DOCKER_HOST=$docker_host
		KILLS=${BUILD_KILLS:-50} bench/soak-build.sh
	) || fail "bench/soak-build.sh"
fi
((failures == 0))
