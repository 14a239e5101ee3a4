# The image the quantgate GitHub Action runs, and the local reproduction of it:
#   docker build -t quantgate . && docker run --rm -v "$PWD:/github/workspace" -w /github/workspace quantgate
#
# Two stages: `build` makes a virtual environment from pinned wheels (docker/*.lock) and the
# package itself (not editable); the final stage holds only the Python runtime, that venv and
# the entrypoint. No compilers, no torch (QAT is not part of the gate), no pip cache. matplotlib
# (the [plots] extra) is in, for --plots and the pictures the example workflow uploads.

FROM debian:bookworm-slim AS build

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

# python3-venv brings ensurepip; bookworm's python3 is 3.11.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*

RUN python3 -m venv /opt/quantgate

COPY docker/requirements.lock docker/build-requirements.lock /tmp/lock/
# Wheels only: this stage has no compiler, and a source build would be a silent unpinned change.
RUN /opt/quantgate/bin/pip install --only-binary=:all: --no-compile -r /tmp/lock/requirements.lock \
 && /opt/quantgate/bin/pip install --only-binary=:all: -r /tmp/lock/build-requirements.lock

COPY . /src
# --no-deps: every dependency already came from the lock; the wheel build uses the pinned
# setuptools in the venv. Then drop what only the build needed and the test suites and test
# data numpy and onnx ship (about 30 MB) that the gate never reads.
RUN /opt/quantgate/bin/pip install --no-deps --no-build-isolation /src \
 && /opt/quantgate/bin/pip uninstall -y setuptools wheel pip \
 && rm -rf /opt/quantgate/lib/python3.11/site-packages/onnx/backend/test/data \
 && find /opt/quantgate/lib/python3.11/site-packages/numpy -type d -name tests -prune -exec rm -rf {} + \
 && find /opt/quantgate -name '*.pyi' -delete \
 && /opt/quantgate/bin/python -m compileall -q -j 0 /opt/quantgate/lib \
 && /opt/quantgate/bin/python -c "import quantgate.action, quantgate.cli, matplotlib" \
 && /opt/quantgate/bin/quantgate --version


FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="quantgate" \
      org.opencontainers.image.description="Gate int8 ONNX sidecars against fp32: the quantgate GitHub Action" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV DEBIAN_FRONTEND=noninteractive \
    PATH=/opt/quantgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# python3-minimal + stdlib only; ca-certificates for the pull-request comment's HTTPS calls.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log

# Build metadata: the image the pull-request comment names in its `docker run` reproduce line,
# and the repository and commit quantgate was built from (its pip line). The release workflow
# passes all three; a local build leaves them empty, and the comment then says it does not know
# rather than naming a repository (GITHUB_ACTION_REPOSITORY, set by the runner, wins anyway).
ARG QUANTGATE_IMAGE=""
ARG QUANTGATE_SOURCE_REPOSITORY=""
ARG QUANTGATE_SOURCE_REF=""
ENV QUANTGATE_IMAGE=${QUANTGATE_IMAGE} \
    QUANTGATE_SOURCE_REPOSITORY=${QUANTGATE_SOURCE_REPOSITORY} \
    QUANTGATE_SOURCE_REF=${QUANTGATE_SOURCE_REF}

COPY --from=build /opt/quantgate /opt/quantgate

WORKDIR /github/workspace
# The GitHub Action is one command of the CLI, started directly: no shell in between, because
# dash (Debian's /bin/sh) drops environment variables whose names hold a hyphen, and the runner
# passes kebab-case inputs as INPUT_JSON-OUT and the like.
ENTRYPOINT ["/opt/quantgate/bin/quantgate", "action"]
