package keys

import (
	"context"
	"errors"
)

// Static is a Source that always returns the same Material, for tests and
// for callers that built Material themselves (for instance from
// GenerateSelfSigned in development mode).
type Static struct {
	m *Material
}

var _ Source = (*Static)(nil)

// NewStatic returns a Source whose Load returns m.
func NewStatic(m *Material) *Static {
	return &Static{m: m}
}

// Load returns the Material given to NewStatic.
func (s *Static) Load(context.Context) (*Material, error) {
	if s == nil || s.m == nil {
		return nil, errors.New("keys: static source has no material")
	}
	return s.m, nil
}

// String describes the source without secrets.
func (s *Static) String() string {
	if s == nil || s.m == nil {
		return "static:<empty>"
	}
	return "static:" + s.m.KeyID
}
