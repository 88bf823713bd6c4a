package keys

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// maxPEMFileSize bounds what PEMFiles reads, so that a path pointing at the
// wrong file fails fast instead of filling memory.
const maxPEMFileSize = 1 << 20

// PEMFiles is a Source that reads a PEM certificate chain (leaf first) and
// a PEM private key from two files, as ghostunnel's certloader does. The
// same path may be given for both when one file holds chain and key.
type PEMFiles struct {
	// CertificateFile holds the CERTIFICATE blocks, leaf first.
	CertificateFile string
	// PrivateKeyFile holds the unencrypted private key.
	PrivateKeyFile string
	// Clock stamps Material.LoadedAt; time.Now if nil.
	Clock func() time.Time
}

var (
	_ Source    = (*PEMFiles)(nil)
	_ Versioner = (*PEMFiles)(nil)
)

// Load reads and parses both files. Material.Version is "file:" followed by
// the first 16 hex digits of the leaf certificate's SHA-256 fingerprint.
// Errors name the files, never their content.
func (f *PEMFiles) Load(ctx context.Context) (*Material, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keys: loading %s: %w", f, err)
	}
	if f.CertificateFile == "" || f.PrivateKeyFile == "" {
		return nil, fmt.Errorf("keys: loading %s: both CertificateFile and PrivateKeyFile must be set", f)
	}
	certPEM, err := readPEMFile(f.CertificateFile)
	if err != nil {
		return nil, fmt.Errorf("keys: reading certificate file %s: %w", f.CertificateFile, err)
	}
	keyPEM, err := readPEMFile(f.PrivateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("keys: reading private key file %s: %w", f.PrivateKeyFile, err)
	}
	m, err := parsePEM(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("keys: loading certificate file %s and private key file %s: %w",
			f.CertificateFile, f.PrivateKeyFile, err)
	}
	m.Version = "file:" + fingerprint(m)
	m.LoadedAt = now(f.Clock)
	return m, nil
}

// Version describes both files by modification time and size, without
// reading them, so that Holder.Poll picks up a file that was replaced or
// rewritten.
func (f *PEMFiles) Version(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("keys: checking %s: %w", f, err)
	}
	if f.CertificateFile == "" || f.PrivateKeyFile == "" {
		return "", fmt.Errorf("keys: checking %s: both CertificateFile and PrivateKeyFile must be set", f)
	}
	cert, err := os.Stat(f.CertificateFile)
	if err != nil {
		return "", fmt.Errorf("keys: checking certificate file: %w", err)
	}
	key, err := os.Stat(f.PrivateKeyFile)
	if err != nil {
		return "", fmt.Errorf("keys: checking private key file: %w", err)
	}
	return fmt.Sprintf("files:%d-%d+%d-%d", cert.ModTime().UnixNano(), cert.Size(), key.ModTime().UnixNano(), key.Size()), nil
}

// String describes the source without secrets.
func (f *PEMFiles) String() string {
	return fmt.Sprintf("files:%s+%s", f.CertificateFile, f.PrivateKeyFile)
}

func readPEMFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		// *fs.PathError: "open <path>: <reason>", no content.
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxPEMFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPEMFileSize {
		return nil, errors.New("file is larger than 1 MiB; not a PEM key or certificate chain")
	}
	return b, nil
}

// fingerprint is the first 16 hex digits of the leaf's SHA-256 fingerprint.
func fingerprint(m *Material) string {
	sum := sha256.Sum256(m.Chain[0].Raw)
	return hex.EncodeToString(sum[:])[:16]
}

func now(clock func() time.Time) time.Time {
	if clock == nil {
		return time.Now()
	}
	return clock()
}
