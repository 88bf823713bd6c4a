# syntax=docker/dockerfile:1
#
# cqgate container image: a static binary on distroless, running as the
# distroless "nonroot" user (65532), with no shell.
#
#   docker build -t cqgate:dev --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) .
#   docker run --rm -p 8080:8080 -v "$PWD/cqgate.yaml:/etc/cqgate/config.yaml:ro" cqgate:dev
#
# The image ships no configuration: mount one at /etc/cqgate/config.yaml
# (the Helm chart mounts a ConfigMap there). In a container, cqgate must
# listen on 0.0.0.0:8080 to be reachable from outside the pod, and it
# refuses inbound.auth "none" on a non-loopback address: configure api_key
# or mtls, or run it as a sidecar on 127.0.0.1. See docs/deploy.md.

# Base images. Pin them by digest for a reproducible, reviewable build:
# pass the tag with its digest, e.g.
#
#   docker buildx imagetools inspect gcr.io/distroless/static-debian12:nonroot   # prints the digest
#   docker build \
#     --build-arg GO_IMAGE=golang:1.26@sha256:<digest> \
#     --build-arg BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:<digest> .
#
# The defaults below are tags only: this repository was written without
# registry access, so no digest here could have been checked. Renovate or
# Dependabot (docker manager) can keep pinned digests current.
ARG GO_IMAGE=golang:1.26
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

# build compiles on the build host's platform for the target one (no cgo).
FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
WORKDIR /src
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,source=go.mod,target=go.mod \
    --mount=type=bind,source=go.sum,target=go.sum \
    go mod download
ARG TARGETOS
ARG TARGETARCH
# What `cqgate version` and cqgate_build_info report. The build context has
# no .git (.dockerignore), so Go cannot stamp the VCS revision itself:
#   --build-arg VERSION=$(git describe --tags --always) \
#   --build-arg REVISION=$(git rev-parse HEAD) \
#   --build-arg BUILD_TIME=$(git log -1 --format=%cI)
ARG VERSION=""
ARG REVISION=""
ARG BUILD_TIME=""
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=bind,target=. \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOFLAGS=-buildvcs=false \
    VERSION=$VERSION REVISION=$REVISION BUILD_TIME=$BUILD_TIME \
    ./scripts/build.sh /out/cqgate

FROM ${BASE_IMAGE}
ARG VERSION=""
ARG REVISION=""
LABEL org.opencontainers.image.title="cqgate" \
      org.opencontainers.image.description="Carequality client-assertion gateway" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/cqgate /cqgate
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/cqgate"]
CMD ["-config", "/etc/cqgate/config.yaml"]
