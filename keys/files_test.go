package keys_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/keys"
)

func TestPEMFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{KeyType: keys.KeyTypeECP256, CommonName: "files"})
	if err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{KeyType: keys.KeyTypeECP256})
	if err != nil {
		t.Fatal(err)
	}
	certFile := write("chain.pem", certPEM)
	keyFile := write("key.pem", keyPEM)
	combined := write("combined.pem", concat(certPEM, keyPEM))
	otherKeyFile := write("other-key.pem", otherKey)
	garbageFile := write("garbage.pem", []byte("garbage-content-XYZZY"))
	bigFile := write("big.pem", make([]byte, 2<<20))
	missing := filepath.Join(dir, "missing.pem")

	want, err := keys.ParsePEM(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(want.Chain[0].Raw)
	wantVersion := "file:" + hex.EncodeToString(sum[:])[:16]
	loadedAt := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return loadedAt }

	tests := []struct {
		name       string
		src        keys.PEMFiles
		wantErrIs  error
		wantInErr  []string
		wantNotErr []string
	}{
		{name: "separate files", src: keys.PEMFiles{CertificateFile: certFile, PrivateKeyFile: keyFile}},
		{name: "one combined file", src: keys.PEMFiles{CertificateFile: combined, PrivateKeyFile: combined}},
		{name: "missing certificate file", src: keys.PEMFiles{CertificateFile: missing, PrivateKeyFile: keyFile}, wantErrIs: fs.ErrNotExist, wantInErr: []string{"reading certificate file " + missing}},
		{name: "missing key file", src: keys.PEMFiles{CertificateFile: certFile, PrivateKeyFile: missing}, wantErrIs: fs.ErrNotExist, wantInErr: []string{"reading private key file " + missing}},
		{name: "garbage key file", src: keys.PEMFiles{CertificateFile: certFile, PrivateKeyFile: garbageFile}, wantErrIs: keys.ErrNoPrivateKey, wantInErr: []string{certFile, garbageFile}, wantNotErr: []string{"XYZZY"}},
		{name: "garbage certificate file", src: keys.PEMFiles{CertificateFile: garbageFile, PrivateKeyFile: keyFile}, wantErrIs: keys.ErrNoCertificate, wantInErr: []string{garbageFile}, wantNotErr: []string{"XYZZY"}},
		{name: "key of another certificate", src: keys.PEMFiles{CertificateFile: certFile, PrivateKeyFile: otherKeyFile}, wantErrIs: keys.ErrKeyMismatch, wantInErr: []string{otherKeyFile}},
		{name: "file too large", src: keys.PEMFiles{CertificateFile: bigFile, PrivateKeyFile: keyFile}, wantInErr: []string{bigFile, "larger than 1 MiB"}},
		{name: "no paths", src: keys.PEMFiles{}, wantInErr: []string{"both CertificateFile and PrivateKeyFile must be set"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := tc.src
			src.Clock = clock
			m, err := src.Load(context.Background())
			if len(tc.wantInErr) > 0 || tc.wantErrIs != nil {
				if err == nil {
					t.Fatal("Load succeeded, want an error")
				}
				if tc.wantErrIs != nil && !errors.Is(err, tc.wantErrIs) {
					t.Errorf("err = %v, want errors.Is %v", err, tc.wantErrIs)
				}
				for _, s := range tc.wantInErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("err = %q, want it to contain %q", err, s)
					}
				}
				secrets := append(secretsOf(t, keyPEM), secretsOf(t, otherKey)...)
				assertNoSecrets(t, "error", err.Error(), append(secrets, tc.wantNotErr...)...)
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if m.KeyID != want.KeyID || !m.Chain[0].Equal(want.Chain[0]) {
				t.Errorf("loaded %v, want %v", m, want)
			}
			if m.Version != wantVersion {
				t.Errorf("Version = %q, want %q", m.Version, wantVersion)
			}
			if !m.LoadedAt.Equal(loadedAt) {
				t.Errorf("LoadedAt = %v, want the injected clock's %v", m.LoadedAt, loadedAt)
			}
		})
	}

	t.Run("version follows the file", func(t *testing.T) {
		dir := t.TempDir()
		c, k := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
		src := &keys.PEMFiles{CertificateFile: c, PrivateKeyFile: k}
		var versions []string
		for _, pair := range [][2][]byte{{certPEM, keyPEM}, {otherCert, otherKey}} {
			if err := os.WriteFile(c, pair[0], 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(k, pair[1], 0o600); err != nil {
				t.Fatal(err)
			}
			m, err := src.Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			versions = append(versions, m.Version)
		}
		if versions[0] == versions[1] || versions[0] != wantVersion {
			t.Errorf("versions = %q, want two different, first %q", versions, wantVersion)
		}
	})

	t.Run("canceled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := (&keys.PEMFiles{CertificateFile: certFile, PrivateKeyFile: keyFile}).Load(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

func TestStatic(t *testing.T) {
	m := &keys.Material{KeyID: "kid", Version: "static"}
	got, err := keys.NewStatic(m).Load(context.Background())
	if err != nil || got != m {
		t.Fatalf("Load = %p, %v; want %p", got, err, m)
	}
	if _, err := keys.NewStatic(nil).Load(context.Background()); err == nil {
		t.Fatal("NewStatic(nil).Load succeeded")
	}
}
