// Package clocktest provides a settable clock for tests of code that takes
// an injectable `Clock func() time.Time`.
package clocktest
