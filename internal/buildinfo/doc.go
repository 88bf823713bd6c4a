// Package buildinfo says which cqgate this is: the module version, the
// VCS revision and commit time, and the Go version, read from the
// binary's embedded build information (runtime/debug.ReadBuildInfo) and
// overridable at link time, for builds without VCS metadata (a Docker
// build context without .git):
//
//	go build -ldflags "-X github.com/cqgate/cqgate/internal/buildinfo.version=v1.4.0 \
//	  -X github.com/cqgate/cqgate/internal/buildinfo.revision=$(git rev-parse HEAD) \
//	  -X github.com/cqgate/cqgate/internal/buildinfo.time=$(git log -1 --format=%cI)" ./cmd/cqgate
package buildinfo
