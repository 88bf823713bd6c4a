package vault

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/api"
)

// ReadTransitKey reads the transit key at path (GET /v1/<path>, e.g.
// transit/keys/cqgate). Errors are Vault's (an *api.ResponseError for an
// error answer), unwrapped; a missing key is a nil secret, as with
// api.Logical, and is reported to the error observer too.
func (c *Client) ReadTransitKey(ctx context.Context, path string) (*api.Secret, error) {
	if c == nil {
		return nil, fmt.Errorf("vault: %w", errNoClient)
	}
	s, err := c.api.Logical().ReadWithContext(ctx, path)
	if err != nil || s == nil {
		c.failed(OpTransitKey)
	}
	return s, err
}

// TransitSign asks the transit engine to sign (POST /v1/<path>, e.g.
// transit/sign/cqgate) with body as the request. Errors are Vault's,
// unwrapped.
func (c *Client) TransitSign(ctx context.Context, path string, body map[string]any) (_ *api.Secret, err error) {
	if c == nil {
		return nil, fmt.Errorf("vault: %w", errNoClient)
	}
	defer c.observe(OpTransitSign, &err)
	return c.api.Logical().WriteWithContext(ctx, path, body)
}
