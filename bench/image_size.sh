#!/usr/bin/env bash
# Build the action's image and print its size, build time and what takes the room.
#   bash bench/image_size.sh            # uses the engine scripts/docker-engine.sh started, if any
# Prints one summary line: `image quantgate:bench size_mb=N build_s=N`.
set -euo pipefail
cd "$(dirname "$0")/.."
sock="${QUANTGATE_DOCKER_DIR:-/tmp/quantgate-docker}/docker.sock"
if [[ -z "${DOCKER_HOST:-}" && -S "$sock" ]]; then export DOCKER_HOST="unix://$sock"; fi
docker_bin="$(command -v /usr/bin/docker || command -v docker)"
tag="${1:-quantgate:bench}"
"$docker_bin" info >/dev/null 2>&1 || { echo "image_size: no Docker engine; run: bash scripts/docker-engine.sh start" >&2; exit 1; }
start=$(date +%s)
"$docker_bin" build --quiet --tag "$tag" . >/dev/null
build_s=$(( $(date +%s) - start ))
bytes=$("$docker_bin" image inspect --format '{{.Size}}' "$tag")
base=$("$docker_bin" image inspect --format '{{.Size}}' debian:bookworm-slim 2>/dev/null || echo 0)
echo "layers (largest first):"
"$docker_bin" history --format '{{.Size}}\t{{.CreatedBy}}' "$tag" | sort -h -r | head -n 5 | cut -c1-110
echo "largest site-packages:"
"$docker_bin" run --rm --network none --entrypoint sh "$tag" -c \
    'du -sm /opt/quantgate/lib/python3.11/site-packages/* | sort -n -r | head -n 6'
printf 'image %s size_mb=%d base_mb=%d build_s=%d (cached layers make re-builds faster)\n' \
    "$tag" $(( bytes / 1000000 )) $(( base / 1000000 )) "$build_s"
