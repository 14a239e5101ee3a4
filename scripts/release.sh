#!/usr/bin/env bash
# Cut a release from a version tag (what .github/workflows/release.yml runs; docs/releasing.md):
#   1. check the tag: vX.Y.Z, the version pyproject.toml holds, a `## [X.Y.Z]` section in CHANGELOG.md;
#   2. build the action's image as ghcr.io/OWNER/NAME:vX.Y.Z and :vX, with its build metadata (the
#      repository and tag it was built from, the image name the comment's reproduce line uses);
#   3. push both tags;
#   4. smoke-test the pushed image on the shipped models, as the runner would start it;
#   5. make the release commit whose action.yml runs that image, and move the major tag vX to it.
#
#   bash scripts/release.sh --dry-run v0.1.0
# does all of it except the two pushes (steps 3 and 5's `git push`), with the release commit made
# in a scratch clone, so a maintainer (and the test suite) can run it without GitHub.
#
# Environment: GITHUB_REPOSITORY (OWNER/NAME; default: the origin remote's, in a dry run
# acme/quantgate when there is none), GITHUB_SERVER_URL (default https://github.com),
# GH_TOKEN (the push of the moved tag; not needed in a dry run), DOCKER (the docker client).
set -euo pipefail
cd "$(dirname "$0")/.."

dry=0
if [ "${1:-}" = "--dry-run" ]; then
  dry=1
  shift
fi
version="${1:-}"
die() { echo "release: error: $*" >&2; exit 2; }
[[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "'$version' is not a release tag; give vX.Y.Z (e.g. v0.1.0)"
major="${version%%.*}"
docker="${DOCKER:-docker}"
server="${GITHUB_SERVER_URL:-https://github.com}"

repo="${GITHUB_REPOSITORY:-}"
if [ -z "$repo" ]; then
  origin="$(git remote get-url origin 2>/dev/null || true)"
  repo="$(python3 -c 'import re, sys
m = re.match(r"(?:https://|git@)github\.com[/:]([\w.-]+/[\w.-]+?)(?:\.git)?/?$", sys.argv[1])
print(m.group(1) if m else "")' "$origin")"
  if [ -z "$repo" ]; then
    [ "$dry" = 1 ] || die "GITHUB_REPOSITORY is not set and origin is not a GitHub repository"
    repo="acme/quantgate"
  fi
fi
[[ "$repo" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || die "GITHUB_REPOSITORY '$repo' is not OWNER/NAME"
image="ghcr.io/${repo,,}"

# 1. the tag names the version the package and the changelog hold
pyversion="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
[ "v${pyversion}" = "$version" ] || die "the tag is $version but pyproject.toml says version $pyversion; bump it first"
grep -q "^## \[${version#v}\]" CHANGELOG.md || die "CHANGELOG.md has no '## [${version#v}]' section; write it first"
grep -q '^  image: Dockerfile$' action.yml || die "action.yml does not say 'image: Dockerfile'; release from main"
sha="$(git rev-parse HEAD)"
echo "release: $version of $repo at $sha -> $image:$version and :$major$([ "$dry" = 1 ] && echo ' (dry run)')"

# 2. the image, with where it came from
"$docker" build --quiet \
  --tag "$image:$version" --tag "$image:$major" \
  --build-arg "QUANTGATE_IMAGE=$image:$version" \
  --build-arg "QUANTGATE_SOURCE_REPOSITORY=$repo" \
  --build-arg "QUANTGATE_SOURCE_REF=$version" \
  --label "org.opencontainers.image.source=$server/$repo" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$sha" \
  . >/dev/null
echo "release: built $image:$version"

# 3. push
if [ "$dry" = 1 ]; then
  echo "release: dry run: would push $image:$version and $image:$major"
else
  "$docker" push --quiet "$image:$version"
  "$docker" push --quiet "$image:$major"
fi

# 4. smoke test: the image on a scratch copy of the shipped models, started as the runner starts it
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ws/model" "$work/fc"
cp -r model/tiny "$work/ws/model/tiny"
: >"$work/fc/out"
"$docker" run --rm --network none -v "$work/ws:/github/workspace" -v "$work/fc:/github/file_commands" \
  -w /github/workspace -e INPUT_COMMENT=false -e GITHUB_OUTPUT=/github/file_commands/out \
  "$image:$version" -q >/dev/null
grep -qx 'verdict=pass' "$work/fc/out" || die "the smoke test did not pass: $(cat "$work/fc/out")"
echo "release: smoke test passed (verdict=pass on model/tiny/registry.json)"

# 5. the release commit: action.yml runs the pushed image; the major tag moves to it
where="."
if [ "$dry" = 1 ]; then
  git clone --quiet --no-local . "$work/clone"
  git -C "$work/clone" checkout --quiet --detach "$sha"
  where="$work/clone"
fi
sed -i "s|^  image: Dockerfile$|  image: docker://${image}:${version}|" "$where/action.yml"
grep -q "^  image: docker://${image}:${version}$" "$where/action.yml" || die "could not point action.yml at the image"
git -C "$where" -c user.name="github-actions[bot]" \
  -c user.email="41898282+github-actions[bot]@users.noreply.github.com" \
  commit --quiet -m "release ${version}: run the prebuilt image ${image}:${version}" -- action.yml
git -C "$where" tag -f "$major" >/dev/null
release_sha="$(git -C "$where" rev-parse HEAD)"
if [ "$dry" = 1 ]; then
  echo "release: dry run: would push refs/tags/$major -> $release_sha (action.yml: image: docker://${image}:${version})"
  echo "release: dry run done; nothing was pushed"
  exit 0
fi
[ -n "${GH_TOKEN:-}" ] || die "GH_TOKEN is not set: the moved tag cannot be pushed"
# The checkout kept no credentials: the token goes to this one push as an HTTP header (what
# actions/checkout would have written to .git/config), masked in the log.
auth="$(printf 'x-access-token:%s' "$GH_TOKEN" | base64 -w0)"
echo "::add-mask::${auth}"
git -c "http.${server}/.extraheader=AUTHORIZATION: basic ${auth}" push -f origin "refs/tags/${major}"
echo "release: $major -> $release_sha; users of @$major now run $image:$version"
