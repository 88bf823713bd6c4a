// Package gateway assembles cqgate from its configuration: the directory
// client and resolver, token-URL discovery, the signing key source, the
// assertion signer, token exchange and cache, the proxy and the router. It
// is the single place that knows how the parts fit, so that cmd/cqgate and
// the end-to-end tests build exactly the same gateway.
package gateway
