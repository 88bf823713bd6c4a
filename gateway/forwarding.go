package gateway

import (
	"fmt"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/proxy"
	"github.com/cqgate/cqgate/proxy/fhirurl"
)

// forwarding builds what the proxy needs to hand back cqgate's own URLs:
// the public base (server.public_url, server.trusted_proxies) and the
// bulk link sealer (bulk.link_key, or a random key for this process;
// links valid for bulk.link_ttl).
func forwarding(cfg *config.Config) (*proxy.PublicBase, *proxy.Links, error) {
	pb := &proxy.PublicBase{}
	if cfg.Server.PublicURL != "" {
		u, err := fhirurl.ParsePublicURL(cfg.Server.PublicURL)
		if err != nil {
			return nil, nil, fmt.Errorf("gateway: server.public_url: %w", err)
		}
		pb.URL = u
	}
	trusted, err := cfg.Server.TrustedPrefixes()
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: server.trusted_proxies: %w", err)
	}
	pb.Trusted = trusted
	key, err := cfg.Bulk.Key()
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: bulk.link_key: %w", err)
	}
	links, err := proxy.NewLinks(key, proxy.LinkTTL(cfg.Bulk.LinkTTL))
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: %w", err)
	}
	return pb, links, nil
}
