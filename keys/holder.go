package keys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Errors returned (wrapped) by Holder.Reload for a certificate outside its
// validity period.
var (
	ErrCertificateExpired     = errors.New("leaf certificate has expired")
	ErrCertificateNotYetValid = errors.New("leaf certificate is not yet valid")
)

// HolderOptions configures a Holder. The zero value is usable.
type HolderOptions struct {
	// Clock tells the time for the validity check; time.Now if nil.
	Clock func() time.Time
	// Logger receives one info entry per successful reload and one warn
	// entry per failed reload; nothing is logged if nil. Entries never
	// carry key material, PEM text or tokens.
	Logger logrus.FieldLogger
}

// Holder keeps the current Material behind an atomic pointer. Reload swaps
// in new material only when it loaded and validated; on any failure the
// previous material stays in service. Current is lock free, so signers can
// call it on every request.
//
// A Holder is itself a Source, so it can stand wherever a Source is wanted.
type Holder struct {
	src   Source
	clock func() time.Time
	log   logrus.FieldLogger

	reloadMu sync.Mutex // serializes Reload so an older load never overwrites a newer one
	current  atomic.Pointer[Material]
}

var _ Source = (*Holder)(nil)

// NewHolder returns a Holder that loads from src. It holds nothing until
// the first successful Reload (or Load).
func NewHolder(src Source, opts HolderOptions) *Holder {
	h := &Holder{src: src, clock: opts.Clock, log: opts.Logger}
	if h.clock == nil {
		h.clock = time.Now
	}
	if h.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		h.log = l
	}
	return h
}

// Current returns the material in service, or nil before the first
// successful load.
func (h *Holder) Current() *Material {
	return h.current.Load()
}

// Load returns the current material, loading it first if there is none.
func (h *Holder) Load(ctx context.Context) (*Material, error) {
	if m := h.Current(); m != nil {
		return m, nil
	}
	return h.Reload(ctx)
}

// Reload loads material from the source and checks it: a signer and a
// chain whose leaf certifies the signer's public key, within the leaf's
// validity period at the Holder's clock. On success the new material
// replaces the current one and is returned. On any failure the current
// material is kept, a warning is logged and the error is returned with a
// nil Material.
func (h *Holder) Reload(ctx context.Context) (*Material, error) {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()

	m, err := h.load(ctx)
	if err != nil {
		fields := logrus.Fields{"source": describe(h.src), "error": err.Error()}
		if old := h.Current(); old != nil {
			fields["kept_version"] = old.Version
			fields["kept_key_id"] = old.KeyID
			fields["kept_not_after"] = old.NotAfter().UTC().Format(time.RFC3339)
		}
		h.log.WithFields(fields).Warn("keys: reloading signing material failed; keeping the previous material")
		return nil, err
	}
	h.current.Store(m)
	h.log.WithFields(logrus.Fields{
		"source":    describe(h.src),
		"version":   m.Version,
		"key_id":    m.KeyID,
		"subject":   m.Chain[0].Subject.String(),
		"not_after": m.NotAfter().UTC().Format(time.RFC3339),
	}).Info("keys: loaded signing material")
	return m, nil
}

func (h *Holder) load(ctx context.Context) (*Material, error) {
	if h.src == nil {
		return nil, errors.New("keys: holder has no source")
	}
	m, err := h.src.Load(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.check(m); err != nil {
		return nil, err
	}
	return m, nil
}

func (h *Holder) check(m *Material) error {
	if m == nil {
		return fmt.Errorf("keys: source %s returned no material", describe(h.src))
	}
	if m.Signer == nil || len(m.Chain) == 0 || m.Chain[0] == nil {
		return fmt.Errorf("keys: material %s lacks a signer or a certificate chain", label(m))
	}
	leaf := m.Chain[0]
	if !publicKeysEqual(m.Signer.Public(), leaf.PublicKey) {
		return fmt.Errorf("keys: material %s: %w (leaf subject %q)", label(m), ErrKeyMismatch, leaf.Subject.String())
	}
	now := h.clock()
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("keys: refusing material %s: %w: subject %q, NotAfter %s, now %s",
			label(m), ErrCertificateExpired, leaf.Subject.String(),
			leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return fmt.Errorf("keys: refusing material %s: %w: subject %q, NotBefore %s, NotAfter %s, now %s",
			label(m), ErrCertificateNotYetValid, leaf.Subject.String(),
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339),
			now.UTC().Format(time.RFC3339))
	}
	return nil
}

// label names material in errors: its version, else its key ID.
func label(m *Material) string {
	if m.Version != "" {
		return m.Version
	}
	if m.KeyID != "" {
		return "kid " + m.KeyID
	}
	return "(unnamed)"
}

// String describes the holder and its current material, without secrets.
func (h *Holder) String() string {
	return fmt.Sprintf("holder(%s: %v)", describe(h.src), h.Current())
}

// describe names a source for logs and errors. Sources of this package
// implement fmt.Stringer without secrets; for others only the type is used,
// as their fields might hold credentials.
func describe(src Source) string {
	switch s := src.(type) {
	case nil:
		return "<nil>"
	case *Static, *PEMFiles, *VaultKV, *Holder:
		return s.(fmt.Stringer).String()
	default:
		return fmt.Sprintf("%T", src)
	}
}
