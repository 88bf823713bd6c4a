package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set with -ldflags -X; each wins over what the build information says.
var (
	version  string
	revision string
	time     string
)

// Info describes a build.
type Info struct {
	// Version is the main module's version ("v1.4.0", a pseudo-version,
	// or "(devel)" for a build from a work tree).
	Version string `json:"version"`
	// Revision is the VCS revision, "unknown" when not recorded; a
	// "-dirty" suffix says the work tree had uncommitted changes.
	Revision string `json:"revision"`
	// Time is the revision's commit time (RFC 3339), "" when unknown.
	Time string `json:"time,omitempty"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"go_version"`
}

// Get returns the running binary's build information.
func Get() Info {
	return from(debug.ReadBuildInfo())
}

func from(bi *debug.BuildInfo, ok bool) Info {
	in := Info{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}
	if ok && bi != nil {
		if bi.Main.Version != "" {
			in.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.time":
				in.Time = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && in.Revision != "unknown" {
			in.Revision += "-dirty"
		}
	}
	if version != "" {
		in.Version = version
	}
	if revision != "" {
		in.Revision = revision
	}
	if time != "" {
		in.Time = time
	}
	return in
}
