package revocation

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// fetch makes one bounded request through the configured client: a
// timeout, a 200 status, and a body of at most limit bytes.
func (c *Checker) fetch(ctx context.Context, method, url string, body []byte, contentType string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, fmt.Errorf("invalid URL: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: Content-Length %d exceeds the limit of %d bytes", ErrTooLarge, resp.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}

// cached returns the cached value for key or computes it with load, one
// load per key at a time. load runs detached from the caller's
// cancellation (but with its values, such as an egress permission), so a
// caller giving up does not fail the others waiting for the same answer;
// its result is cached until the time it returns (failures for
// FailureTTL). A caller whose ctx is done gets what the cache holds, or
// ctx's error: it starts no load.
func (c *Checker) cached(ctx context.Context, key string, load func(context.Context) (any, time.Time, error)) (any, error) {
	if e, ok := c.cache.get(key, c.cfg.Clock()); ok {
		return e.val, e.err
	}
	if err := ctx.Err(); err != nil {
		return nil, outOfTime(err)
	}
	ch := c.group.DoChan(key, func() (any, error) {
		if e, ok := c.cache.get(key, c.cfg.Clock()); ok {
			return e.val, e.err
		}
		v, until, err := load(context.WithoutCancel(ctx))
		now := c.cfg.Clock()
		if err != nil {
			until = now.Add(c.cfg.FailureTTL)
			v = nil
		}
		c.cache.put(key, cacheEntry{val: v, err: err, until: until}, now)
		return v, err
	})
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, outOfTime(ctx.Err())
	}
}

// outOfTime is the error of a caller that stopped waiting for an answer
// (err is its context's error).
func outOfTime(err error) error {
	return fmt.Errorf("gave up waiting for the answer: %w", err)
}
