// Package origin compares and writes the origins of URLs (RFC 6454):
// scheme, host and port, a scheme's default port counting as absent.
// It is the one place that knows the default ports; the party check of
// tenant and the directory's page cursors use it.
package origin
