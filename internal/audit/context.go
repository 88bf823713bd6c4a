package audit

import "context"

type recordKey struct{}

// NewContext returns ctx carrying rec, so that the parts a request passes
// through (the proxy's bulk export handling) can add to its record.
func NewContext(ctx context.Context, rec *Record) context.Context {
	return context.WithValue(ctx, recordKey{}, rec)
}

// FromContext returns the record NewContext put in ctx, or nil.
func FromContext(ctx context.Context) *Record {
	rec, _ := ctx.Value(recordKey{}).(*Record)
	return rec
}
