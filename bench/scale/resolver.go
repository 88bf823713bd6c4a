package scale

import (
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/tenant"
)

// Resolver is a tenant.Resolver with the real directory and discovery
// clients and caches, whose requests reach s; the directory is asked
// with apiKey, and every organization gets defaults.
func (s *Server) Resolver(apiKey string, defaults tenant.Settings) *tenant.Resolver {
	return &tenant.Resolver{
		Directory: directory.NewResolver(directory.ResolverConfig{
			Fetcher: &directory.R4Client{BaseURL: DirectoryURL, APIKey: apiKey, HTTPClient: s.Client()},
		}),
		Discovery: discovery.New(discovery.Config{HTTPClient: s.Client()}),
		Defaults:  defaults,
	}
}
