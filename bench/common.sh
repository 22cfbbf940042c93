# Sourced by the bench scripts, with $ns set: checks the fixtures' base
# image, builds docker-pkg into $work, tags the base into $ns (image_tag finds
# a base image only in the tree's namespace) and removes everything under
# $ns, and $work, on exit. remove_images clears $ns between runs.
base=docker-pkg-fixtures/busybox:static

docker image inspect "$base" >/dev/null 2>&1 || {
	echo "bench: no $base image: run scripts/docker-up" >&2
	exit 1
}

work=$(mktemp -d)
remove_images() {
	docker images --format '{{.Repository}}:{{.Tag}}' | { grep "^$ns/" || true; } | { grep -v "^$ns/busybox:" || true; } |
		xargs -r docker rmi -f >/dev/null
}
cleanup() {
	remove_images
	docker rmi "$ns/busybox:static" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/docker-pkg" ./cmd/docker-pkg
docker tag "$base" "$ns/busybox:static"
