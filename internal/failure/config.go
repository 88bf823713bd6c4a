package failure

import "strings"

// ConfigError lists every problem a component (vault, cluster) found in
// its configuration, each naming the key it is about. It is of kind
// Misconfigured. Problems never hold a secret: each component redacts
// passwords and keys before it reports them.
type ConfigError struct {
	// Component is the package that checked, the message's prefix.
	Component string
	// Problems are the problems, in the order they were found.
	Problems []error
}

func (e *ConfigError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return e.Component + ": invalid configuration: " + strings.Join(msgs, "; ")
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e *ConfigError) Unwrap() []error { return e.Problems }

// Kind is Misconfigured: cqgate's own configuration cannot work.
func (e *ConfigError) Kind() Kind { return Misconfigured }

var _ Classified = (*ConfigError)(nil)
