# syntax=docker/dockerfile:1
#
# cqgate container image: a static binary on distroless, running as the
# distroless "nonroot" user (65532), with no shell.
#
#   docker build -t cqgate:dev .
#   docker run --rm -p 8080:8080 -v "$PWD/cqgate.yaml:/etc/cqgate/config.yaml:ro" cqgate:dev
#
# The image ships no configuration: mount one at /etc/cqgate/config.yaml
# (the Helm chart mounts a ConfigMap there). In a container, cqgate must
# listen on 0.0.0.0:8080 to be reachable from outside the pod, and it
# refuses inbound.auth "none" on a non-loopback address: configure api_key
# or mtls, or run it as a sidecar on 127.0.0.1. See docs/deploy.md.

# GO_VERSION is the Go release the builder compiles with (go.mod: 1.26).
ARG GO_VERSION=1.26

# build compiles on the build host's platform for the target one (no cgo).
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,source=go.mod,target=go.mod \
    --mount=type=bind,source=go.sum,target=go.sum \
    go mod download
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=bind,target=. \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/cqgate ./cmd/cqgate

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="cqgate" \
      org.opencontainers.image.description="Carequality client-assertion gateway"
COPY --from=build /out/cqgate /cqgate
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/cqgate"]
CMD ["-config", "/etc/cqgate/config.yaml"]
