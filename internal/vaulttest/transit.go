package vaulttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // registers crypto.SHA1 for hash_algorithm=sha1
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Transit key types the fake knows, as Vault names them.
const (
	KeyTypeAES256    = "aes256-gcm96"
	KeyTypeRSA2048   = "rsa-2048"
	KeyTypeRSA3072   = "rsa-3072"
	KeyTypeRSA4096   = "rsa-4096"
	KeyTypeECDSAP256 = "ecdsa-p256"
	KeyTypeECDSAP384 = "ecdsa-p384"
	KeyTypeECDSAP521 = "ecdsa-p521"
	KeyTypeEd25519   = "ed25519"
)

type transitKey struct {
	name            string
	typ             string
	versions        []*transitVersion // versions[i] is version i+1
	deletionAllowed bool
	minEncryption   int
	minDecryption   int
}

type transitVersion struct {
	signer  crypto.Signer // nil for symmetric keys
	created time.Time
}

// hashes are the hash_algorithm values the fake's sign endpoint accepts.
var hashes = map[string]crypto.Hash{
	"sha1":     crypto.SHA1,
	"sha2-224": crypto.SHA224,
	"sha2-256": crypto.SHA256,
	"sha2-384": crypto.SHA384,
	"sha2-512": crypto.SHA512,
}

// AddTransitKey creates a transit key of keyType (one of the KeyType
// constants) named name at mount, enabling the transit engine there if
// needed, and returns its public key (nil for aes256-gcm96). RSA
// generation is slow under -race; ImportTransitKey takes a ready key.
func (s *Server) AddTransitKey(mount, name, keyType string) crypto.PublicKey {
	s.tb.Helper()
	signer, err := generateTransitKey(keyType)
	if err != nil {
		s.tb.Fatalf("vaulttest: AddTransitKey %s/keys/%s: %v", mount, name, err)
	}
	s.addTransitKey(mount, name, keyType, signer)
	if signer == nil {
		return nil
	}
	return signer.Public()
}

// ImportTransitKey creates a transit key named name at mount whose version 1
// is key (*rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey),
// enabling the transit engine there if needed.
func (s *Server) ImportTransitKey(mount, name string, key crypto.Signer) {
	s.tb.Helper()
	typ, err := transitKeyType(key)
	if err != nil {
		s.tb.Fatalf("vaulttest: ImportTransitKey %s/keys/%s: %v", mount, name, err)
	}
	s.addTransitKey(mount, name, typ, key)
}

func (s *Server) addTransitKey(mount, name, typ string, signer crypto.Signer) {
	s.tb.Helper()
	mount = strings.Trim(mount, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, isKV := s.mounts[mount]; isKV {
		s.tb.Fatalf("vaulttest: %q is a KV mount, not transit", mount)
	}
	if s.transits[mount] == nil {
		s.transits[mount] = make(map[string]*transitKey)
	}
	if _, exists := s.transits[mount][name]; exists {
		s.tb.Fatalf("vaulttest: transit key %s/keys/%s exists", mount, name)
	}
	s.transits[mount][name] = &transitKey{
		name:          name,
		typ:           typ,
		versions:      []*transitVersion{{signer: signer, created: time.Now().UTC()}},
		minDecryption: 1,
	}
}

// RotateTransitKey adds a version to a transit key, as
// POST /<mount>/keys/<name>/rotate does, and returns the new version. The
// new version's key is next when given (it must be of the key's type),
// otherwise freshly generated.
func (s *Server) RotateTransitKey(mount, name string, next crypto.Signer) int {
	s.tb.Helper()
	mount = strings.Trim(mount, "/")
	s.mu.Lock()
	k := s.transits[mount][name]
	s.mu.Unlock()
	if k == nil {
		s.tb.Fatalf("vaulttest: RotateTransitKey: no transit key %s/keys/%s", mount, name)
	}
	if next == nil {
		var err error
		if next, err = generateTransitKey(k.typ); err != nil {
			s.tb.Fatalf("vaulttest: RotateTransitKey %s/keys/%s: %v", mount, name, err)
		}
	} else if typ, err := transitKeyType(next); err != nil || typ != k.typ {
		s.tb.Fatalf("vaulttest: RotateTransitKey %s/keys/%s: key of type %q, want %q (%v)", mount, name, typ, k.typ, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k.versions = append(k.versions, &transitVersion{signer: next, created: time.Now().UTC()})
	return len(k.versions)
}

// TransitPublicKey returns the public key of version (0: the latest) of a
// transit key, or nil if there is no such key or version.
func (s *Server) TransitPublicKey(mount, name string, version int) crypto.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.transits[strings.Trim(mount, "/")][name]
	if k == nil {
		return nil
	}
	if version == 0 {
		version = len(k.versions)
	}
	if version < 1 || version > len(k.versions) || k.versions[version-1].signer == nil {
		return nil
	}
	return k.versions[version-1].signer.Public()
}

func generateTransitKey(typ string) (crypto.Signer, error) {
	switch typ {
	case KeyTypeAES256:
		return nil, nil
	case KeyTypeRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyTypeRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case KeyTypeRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case KeyTypeECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyTypeECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyTypeECDSAP521:
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case KeyTypeEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("unknown key type %q", typ)
}

func transitKeyType(key crypto.Signer) (string, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		switch k.N.BitLen() {
		case 2048:
			return KeyTypeRSA2048, nil
		case 3072:
			return KeyTypeRSA3072, nil
		case 4096:
			return KeyTypeRSA4096, nil
		}
		return "", fmt.Errorf("RSA key of %d bits; transit has 2048, 3072 and 4096", k.N.BitLen())
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return KeyTypeECDSAP256, nil
		case elliptic.P384():
			return KeyTypeECDSAP384, nil
		case elliptic.P521():
			return KeyTypeECDSAP521, nil
		}
	case ed25519.PrivateKey:
		return KeyTypeEd25519, nil
	}
	return "", fmt.Errorf("unsupported key %T", key)
}

func signingType(typ string) bool { return typ != KeyTypeAES256 }

// transit serves the transit engine's keys/ and sign/ endpoints.
func (s *Server) transit(w http.ResponseWriter, r *http.Request, mount, rest string, body map[string]any) {
	switch {
	case strings.HasPrefix(rest, "keys/"):
		name := strings.Trim(strings.TrimPrefix(rest, "keys/"), "/")
		action := ""
		if i := strings.IndexByte(name, '/'); i >= 0 {
			name, action = name[:i], name[i+1:]
		}
		switch {
		case action == "" && r.Method == http.MethodGet:
			s.transitRead(w, mount, name)
		case action == "" && (r.Method == http.MethodPost || r.Method == http.MethodPut):
			s.transitCreate(w, mount, name, body)
		case action == "" && r.Method == http.MethodDelete:
			s.transitDelete(w, mount, name)
		case action == "rotate" && (r.Method == http.MethodPost || r.Method == http.MethodPut):
			s.transitRotate(w, mount, name)
		case action == "config" && (r.Method == http.MethodPost || r.Method == http.MethodPut):
			s.transitConfig(w, mount, name, body)
		default:
			writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		}
	case strings.HasPrefix(rest, "sign/"):
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
			return
		}
		name, urlAlg, _ := strings.Cut(strings.Trim(strings.TrimPrefix(rest, "sign/"), "/"), "/")
		s.transitSign(w, mount, name, urlAlg, body)
	default:
		writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", mount+"/"+rest))
	}
}

func (s *Server) transitKeyLocked(mount, name string) *transitKey {
	return s.transits[mount][name]
}

// transitRead is GET /<mount>/keys/<name>: 404 with no errors when the key
// does not exist, as Vault answers.
func (s *Server) transitRead(w http.ResponseWriter, mount, name string) {
	s.mu.Lock()
	k := s.transitKeyLocked(mount, name)
	var data map[string]any
	if k != nil {
		data = k.format()
	}
	s.mu.Unlock()
	if k == nil {
		writeErrors(w, http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, envelope{RequestID: randomUUID(), Data: data, MountType: "transit"})
}

func (s *Server) transitCreate(w http.ResponseWriter, mount, name string, body map[string]any) {
	typ, err := stringParam(body, "type")
	if err != nil {
		writeErrors(w, http.StatusBadRequest, err.Error())
		return
	}
	if typ == "" {
		typ = KeyTypeAES256
	}
	s.mu.Lock()
	k := s.transitKeyLocked(mount, name)
	s.mu.Unlock()
	if k == nil {
		signer, err := generateTransitKey(typ)
		if err != nil {
			writeErrors(w, http.StatusBadRequest, fmt.Sprintf("unknown key type %q", typ))
			return
		}
		s.mu.Lock()
		if s.transits[mount] == nil {
			s.mu.Unlock()
			writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", mount+"/keys/"+name))
			return
		}
		if k = s.transitKeyLocked(mount, name); k == nil {
			k = &transitKey{name: name, typ: typ, minDecryption: 1,
				versions: []*transitVersion{{signer: signer, created: time.Now().UTC()}}}
			s.transits[mount][name] = k
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	data := k.format()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, envelope{RequestID: randomUUID(), Data: data, MountType: "transit"})
}

func (s *Server) transitDelete(w http.ResponseWriter, mount, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.transitKeyLocked(mount, name)
	if k == nil {
		noContent(w)
		return
	}
	if !k.deletionAllowed {
		writeErrors(w, http.StatusBadRequest, fmt.Sprintf("error deleting policy %s: deletion is not allowed for this policy", name))
		return
	}
	delete(s.transits[mount], name)
	noContent(w)
}

func (s *Server) transitRotate(w http.ResponseWriter, mount, name string) {
	s.mu.Lock()
	k := s.transitKeyLocked(mount, name)
	s.mu.Unlock()
	if k == nil {
		writeErrors(w, http.StatusBadRequest, "key not found")
		return
	}
	signer, err := generateTransitKey(k.typ)
	if err != nil {
		writeErrors(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.mu.Lock()
	k.versions = append(k.versions, &transitVersion{signer: signer, created: time.Now().UTC()})
	data := k.format()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, envelope{RequestID: randomUUID(), Data: data, MountType: "transit"})
}

func (s *Server) transitConfig(w http.ResponseWriter, mount, name string, body map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.transitKeyLocked(mount, name)
	if k == nil {
		writeErrors(w, http.StatusBadRequest, "no existing key named "+name+" could be found")
		return
	}
	if _, ok := body["deletion_allowed"]; ok {
		b, err := boolParam(body, "deletion_allowed")
		if err != nil {
			writeErrors(w, http.StatusBadRequest, err.Error())
			return
		}
		k.deletionAllowed = b
	}
	if _, ok := body["min_encryption_version"]; ok {
		n, err := intParam(body, "min_encryption_version")
		if err != nil || n < 0 || n > len(k.versions) {
			writeErrors(w, http.StatusBadRequest, "cannot set min encryption version of 0 or higher than the latest version")
			return
		}
		k.minEncryption = n
	}
	writeJSON(w, http.StatusOK, envelope{RequestID: randomUUID(), Data: k.format(), MountType: "transit"})
}

// format renders the key as GET /<mount>/keys/<name> does.
func (k *transitKey) format() map[string]any {
	asym := signingType(k.typ)
	data := map[string]any{
		"name":                   k.name,
		"type":                   k.typ,
		"derived":                false,
		"deletion_allowed":       k.deletionAllowed,
		"min_available_version":  0,
		"min_decryption_version": k.minDecryption,
		"min_encryption_version": k.minEncryption,
		"latest_version":         len(k.versions),
		"exportable":             false,
		"allow_plaintext_backup": false,
		"supports_encryption":    !asym || strings.HasPrefix(k.typ, "rsa-"),
		"supports_decryption":    !asym || strings.HasPrefix(k.typ, "rsa-"),
		"supports_signing":       asym,
		"supports_derivation":    !asym || k.typ == KeyTypeEd25519,
		"auto_rotate_period":     0,
		"imported_key":           false,
		"soft_deleted":           false,
	}
	if !asym {
		keys := make(map[string]int64, len(k.versions))
		for i, v := range k.versions {
			keys[strconv.Itoa(i+1)] = v.created.Unix()
		}
		data["keys"] = keys
		return data
	}
	keys := make(map[string]map[string]any, len(k.versions))
	for i, v := range k.versions {
		keys[strconv.Itoa(i+1)] = map[string]any{
			"name":              keyName(k.typ),
			"public_key":        formatPublicKey(v.signer.Public()),
			"certificate_chain": "",
			"creation_time":     v.created.Format(time.RFC3339Nano),
		}
	}
	data["keys"] = keys
	return data
}

func keyName(typ string) string {
	switch typ {
	case KeyTypeECDSAP256:
		return "P-256"
	case KeyTypeECDSAP384:
		return "P-384"
	case KeyTypeECDSAP521:
		return "P-521"
	case KeyTypeEd25519:
		return "ed25519"
	}
	return typ // rsa-2048, rsa-3072, rsa-4096
}

// formatPublicKey is Vault's rendering: PKIX "PUBLIC KEY" PEM for RSA and
// ECDSA, standard base64 of the raw key for Ed25519.
func formatPublicKey(pub crypto.PublicKey) string {
	if ed, ok := pub.(ed25519.PublicKey); ok {
		return base64.StdEncoding.EncodeToString(ed)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// transitSign is POST /<mount>/sign/<name>[/<hash>].
func (s *Server) transitSign(w http.ResponseWriter, mount, name, urlAlg string, body map[string]any) {
	params := struct {
		input, hash, sigAlg, marshaling string
		version                         int
		prehashed                       bool
	}{}
	var err error
	fail := func(msg string) { writeErrors(w, http.StatusBadRequest, msg) }
	if params.input, err = stringParam(body, "input"); err != nil {
		fail(err.Error())
		return
	}
	params.hash = urlAlg
	if params.hash == "" {
		if params.hash, err = stringParam(body, "hash_algorithm"); err != nil {
			fail(err.Error())
			return
		}
	}
	if params.hash == "" {
		params.hash, _ = stringParam(body, "algorithm")
	}
	if params.hash == "" {
		params.hash = "sha2-256"
	}
	hash, ok := hashes[params.hash]
	if !ok {
		fail(fmt.Sprintf("invalid hash algorithm %q", params.hash))
		return
	}
	if params.marshaling, err = stringParam(body, "marshaling_algorithm"); err != nil {
		fail(err.Error())
		return
	}
	if params.marshaling == "" {
		params.marshaling = "asn1"
	}
	if params.marshaling != "asn1" && params.marshaling != "jws" {
		fail(fmt.Sprintf("invalid marshaling type %q", params.marshaling))
		return
	}
	if params.sigAlg, err = stringParam(body, "signature_algorithm"); err != nil {
		fail(err.Error())
		return
	}
	if params.version, err = intParam(body, "key_version"); err != nil {
		fail(err.Error())
		return
	}
	if params.prehashed, err = boolParam(body, "prehashed"); err != nil {
		fail(err.Error())
		return
	}

	s.mu.Lock()
	k := s.transitKeyLocked(mount, name)
	var (
		signer        crypto.Signer
		typ           string
		latest, minEV int
	)
	if k != nil {
		typ, latest, minEV = k.typ, len(k.versions), k.minEncryption
		v := params.version
		if v == 0 {
			v = latest
		}
		if v >= 1 && v <= latest {
			signer = k.versions[v-1].signer
		}
	}
	s.mu.Unlock()
	switch {
	case k == nil:
		fail("signing key not found")
		return
	case !signingType(typ):
		fail(fmt.Sprintf("key type %s does not support signing", typ))
		return
	case params.version < 0:
		fail("requested version for signing is negative")
		return
	case params.version > latest:
		fail("requested version for signing is higher than the latest key version")
		return
	case minEV > 0 && params.version != 0 && params.version < minEV:
		fail("requested version for signing is less than the minimum encryption key version")
		return
	}
	version := params.version
	if version == 0 {
		version = latest
	}

	input, err := base64.StdEncoding.DecodeString(params.input)
	if err != nil {
		fail(fmt.Sprintf("unable to decode input as base64: %s", err))
		return
	}
	if typ != KeyTypeEd25519 && !params.prehashed {
		h := hash.New()
		h.Write(input)
		input = h.Sum(nil)
	}

	var sig []byte
	switch key := signer.(type) {
	case *rsa.PrivateKey:
		switch params.sigAlg {
		case "", "pss":
			sig, err = rsa.SignPSS(rand.Reader, key, hash, input, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		case "pkcs1v15":
			sig, err = rsa.SignPKCS1v15(rand.Reader, key, hash, input)
		default:
			writeErrors(w, http.StatusInternalServerError, fmt.Sprintf("unsupported rsa signature algorithm %s", params.sigAlg))
			return
		}
	case *ecdsa.PrivateKey:
		sig, err = signECDSA(key, input, params.marshaling)
	case ed25519.PrivateKey:
		sig = ed25519.Sign(key, input)
	default:
		err = fmt.Errorf("unsupported key %T", signer)
	}
	if err != nil {
		writeErrors(w, http.StatusInternalServerError, err.Error())
		return
	}
	encoded := base64.StdEncoding.EncodeToString(sig)
	if params.marshaling == "jws" {
		encoded = base64.RawURLEncoding.EncodeToString(sig)
	}
	writeJSON(w, http.StatusOK, envelope{RequestID: randomUUID(), MountType: "transit", Data: map[string]any{
		"signature":   fmt.Sprintf("vault:v%d:%s", version, encoded),
		"key_version": version,
	}})
}

// signECDSA signs digest and marshals the signature as ASN.1 or, for jws,
// as r||s, each left-padded to the curve's byte length.
func signECDSA(key *ecdsa.PrivateKey, digest []byte, marshaling string) ([]byte, error) {
	if marshaling == "asn1" {
		return ecdsa.SignASN1(rand.Reader, key, digest)
	}
	r, s, err := ecdsa.Sign(rand.Reader, key, digest)
	if err != nil {
		return nil, err
	}
	size := (key.Curve.Params().BitSize + 7) / 8
	out := make([]byte, 2*size)
	r.FillBytes(out[:size])
	s.FillBytes(out[size:])
	return out, nil
}
