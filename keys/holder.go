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

// Defaults for HolderOptions and Watch.
const (
	// DefaultExpiryWarning is how long before the leaf certificate expires
	// the Holder starts logging warnings.
	DefaultExpiryWarning = 30 * 24 * time.Hour
	// DefaultWatchInterval is Watch's polling interval when none is given.
	DefaultWatchInterval = time.Minute
)

// expiryWarningEvery spaces the expiry warnings Poll logs for material
// that stays in service.
const expiryWarningEvery = 24 * time.Hour

// Versioner is implemented by sources that can tell cheaply (one small
// request or a stat) which version they would load, so that Holder.Poll
// loads only when it changed. The version string is opaque: only equality
// matters.
type Versioner interface {
	Version(ctx context.Context) (string, error)
}

// HolderOptions configures a Holder. The zero value is usable.
type HolderOptions struct {
	// Clock tells the time for the validity check; time.Now if nil.
	Clock func() time.Time
	// Logger receives one info entry per successful reload and one warn
	// entry per failed reload; nothing is logged if nil. Entries never
	// carry key material, PEM text or tokens.
	Logger logrus.FieldLogger
	// ExpiryWarning is how long before the leaf certificate's NotAfter a
	// warning is logged: when such material is loaded, and then at most
	// daily by Poll. DefaultExpiryWarning if zero; negative turns the
	// warning off.
	ExpiryWarning time.Duration
	// OnReload, when set, is called after every reload that put new
	// material in service (err nil) or failed (the previous material
	// stays); a reload that finds the material in service unchanged is
	// not reported. For a metric; it must not block.
	OnReload func(err error)
}

// Status describes what a Holder holds and how its reloads went, for
// readiness checks and metrics.
type Status struct {
	// Version, LoadedAt and NotAfter describe the material in service;
	// zero before the first successful load.
	Version  string
	LoadedAt time.Time
	NotAfter time.Time
	// LastError is the last failed load or version check, and LastErrorAt
	// when it happened. A later success does not clear them; Failures
	// tells whether the failure is current.
	LastError   string
	LastErrorAt time.Time
	// Failures counts consecutive failed loads since the last success; a
	// Poll whose version check finds the version in service again (the
	// source recovered) counts as a success.
	Failures int
	// Reloads counts loads that put new material in service, the first
	// included.
	Reloads int
}

// Holder keeps the current Material behind an atomic pointer. Reload swaps
// in new material only when it loaded and validated; on any failure the
// previous material stays in service. Current is lock free, so signers can
// call it on every request. Poll and Watch reload when the source's version
// changes, for rotation without a restart.
//
// A Holder is itself a Source, so it can stand wherever a Source is wanted.
type Holder struct {
	src        Source
	clock      func() time.Time
	log        logrus.FieldLogger
	expiryWarn time.Duration
	onReload   func(error)

	reloadMu       sync.Mutex // serializes Reload and Poll so an older load never overwrites a newer one
	seen           string     // source version of the material in service, from Versioner
	versionErrLogd bool       // a failed version check was logged since the last good one
	lastExpiryWarn time.Time
	current        atomic.Pointer[Material]

	statusMu sync.Mutex
	status   Status
}

var _ Source = (*Holder)(nil)

// NewHolder returns a Holder that loads from src. It holds nothing until
// the first successful Reload (or Load).
func NewHolder(src Source, opts HolderOptions) *Holder {
	h := &Holder{src: src, clock: opts.Clock, log: opts.Logger, expiryWarn: opts.ExpiryWarning, onReload: opts.OnReload}
	if h.clock == nil {
		h.clock = time.Now
	}
	if h.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		h.log = l
	}
	if h.expiryWarn == 0 {
		h.expiryWarn = DefaultExpiryWarning
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

// Status returns what the Holder holds and how its loads went.
func (h *Holder) Status() Status {
	h.statusMu.Lock()
	defer h.statusMu.Unlock()
	return h.status
}

// Reload loads material from the source and checks it: a signer (local or
// opaque) and a chain whose leaf certifies the signer's public key, within
// the leaf's validity period at the Holder's clock. On success the new
// material replaces the current one and is returned; material with the
// same Version and key ID as the current one leaves the current one in
// place (and returns it). On any failure the current material is kept, a
// warning is logged, Status records the failure and the error is returned
// with a nil Material.
func (h *Holder) Reload(ctx context.Context) (*Material, error) {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	return h.reloadLocked(ctx)
}

func (h *Holder) reloadLocked(ctx context.Context) (*Material, error) {
	m, err := h.load(ctx)
	if err != nil {
		fields := logrus.Fields{"source": describe(h.src), "error": err.Error()}
		if old := h.Current(); old != nil {
			fields["kept_version"] = old.Version
			fields["kept_key_id"] = old.KeyID
			fields["kept_not_after"] = old.NotAfter().UTC().Format(time.RFC3339)
		}
		h.recordFailure(err)
		h.log.WithFields(fields).Warn("keys: reloading signing material failed; keeping the previous material")
		h.reloaded(err)
		return nil, err
	}
	if old := h.Current(); old != nil && m.Version != "" && m.Version == old.Version && m.KeyID == old.KeyID {
		h.recordSuccess(old, false)
		h.log.WithFields(logrus.Fields{"source": describe(h.src), "version": old.Version}).
			Debug("keys: signing material unchanged")
		return old, nil
	}
	h.current.Store(m)
	h.recordSuccess(m, true)
	h.reloaded(nil)
	h.warnIfExpiring(m, true)
	h.log.WithFields(logrus.Fields{
		"source":    describe(h.src),
		"version":   m.Version,
		"key_id":    m.KeyID,
		"subject":   m.Chain[0].Subject.String(),
		"not_after": m.NotAfter().UTC().Format(time.RFC3339),
	}).Info("keys: loaded signing material")
	return m, nil
}

// Poll reloads when the source's version changed, or always when the
// source is not a Versioner, when nothing is loaded yet, or when the
// version check fails (then the full load decides). A version whose load
// failed is tried again at the next Poll: a half-written rotation, or a
// certificate that is not valid yet, heals by itself. It returns the load
// error, if any; failures are also logged and recorded in Status. When the
// material in service stays and its certificate expires within the
// expiry-warning window, Poll logs a warning at most once a day.
func (h *Holder) Poll(ctx context.Context) error {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()

	v, isVersioner := h.src.(Versioner)
	version := ""
	if isVersioner {
		var err error
		version, err = v.Version(ctx)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return err
			}
			if !h.versionErrLogd {
				h.log.WithFields(logrus.Fields{"source": describe(h.src), "error": err.Error()}).
					Warn("keys: checking the signing material's version failed; loading it in full instead")
				h.versionErrLogd = true
			}
			version = ""
		case version == h.seen && h.Current() != nil:
			h.versionErrLogd = false
			h.recovered(h.Current())
			h.warnIfExpiring(h.Current(), false)
			return nil
		default:
			h.versionErrLogd = false
		}
	}
	if _, err := h.reloadLocked(ctx); err != nil {
		return err
	}
	h.seen = version
	h.warnIfExpiring(h.Current(), false) // rate limited: quiet if the load just warned
	return nil
}

// Watch calls Poll every interval (DefaultWatchInterval if not positive)
// until ctx ends; run it in its own goroutine. If nothing is loaded yet it
// polls at once.
func (h *Holder) Watch(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultWatchInterval
	}
	if h.Current() == nil {
		_ = h.Poll(ctx)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = h.Poll(ctx)
		}
	}
}

// recovered ends a run of failures when the source answers again with
// the version of the material in service (e.g. Vault was unreachable for
// a while): nothing needs loading, and the failures are no longer current.
func (h *Holder) recovered(m *Material) {
	h.statusMu.Lock()
	failures := h.status.Failures
	h.statusMu.Unlock()
	if failures == 0 {
		return
	}
	h.recordSuccess(m, false)
	h.log.WithFields(logrus.Fields{"source": describe(h.src), "version": m.Version, "failures": failures}).
		Info("keys: the signing material's source answers again; the material in service is current")
}

// reloaded reports a swap (err nil) or a failed reload to OnReload.
func (h *Holder) reloaded(err error) {
	if h.onReload != nil {
		h.onReload(err)
	}
}

func (h *Holder) recordFailure(err error) {
	h.statusMu.Lock()
	defer h.statusMu.Unlock()
	h.status.LastError = err.Error()
	h.status.LastErrorAt = h.clock()
	h.status.Failures++
}

func (h *Holder) recordSuccess(m *Material, swapped bool) {
	h.statusMu.Lock()
	defer h.statusMu.Unlock()
	h.status.Version = m.Version
	h.status.LoadedAt = m.LoadedAt
	h.status.NotAfter = m.NotAfter()
	h.status.Failures = 0
	if swapped {
		h.status.Reloads++
	}
}

// warnIfExpiring logs a warning when m's leaf expires within the window:
// always for newly loaded material, at most daily otherwise.
func (h *Holder) warnIfExpiring(m *Material, loaded bool) {
	if m == nil || h.expiryWarn < 0 {
		return
	}
	now := h.clock()
	left := m.NotAfter().Sub(now)
	if left > h.expiryWarn {
		return
	}
	if !loaded && !h.lastExpiryWarn.IsZero() && now.Sub(h.lastExpiryWarn) < expiryWarningEvery {
		return
	}
	h.lastExpiryWarn = now
	h.log.WithFields(logrus.Fields{
		"source":     describe(h.src),
		"version":    m.Version,
		"key_id":     m.KeyID,
		"not_after":  m.NotAfter().UTC().Format(time.RFC3339),
		"expires_in": left.Truncate(time.Second).String(),
	}).Warn("keys: the signing certificate expires soon; store a renewed certificate")
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
	if (m.Signer == nil && m.Opaque == nil) || len(m.Chain) == 0 || m.Chain[0] == nil {
		return fmt.Errorf("keys: material %s lacks a signer or a certificate chain", label(m))
	}
	leaf := m.Chain[0]
	if !publicKeysEqual(m.Public(), leaf.PublicKey) {
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
	case *Static, *PEMFiles, *VaultKV, *VaultTransit, *Holder:
		return s.(fmt.Stringer).String()
	default:
		return fmt.Sprintf("%T", src)
	}
}
