// Package clocktest provides a settable clock for tests of code that takes
// an injectable `Clock func() time.Time`, and a Sleeper for code that
// takes an injectable `Sleep func(ctx, d) error`.
package clocktest
