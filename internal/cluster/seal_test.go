package cluster

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func testKey(b byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, KeySize))
}

func TestSealRoundTrip(t *testing.T) {
	k, err := NewKeyring(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("access-token-secret")
	a, err := k.Seal("cqgate:tok:aa", plain)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.Seal("cqgate:tok:aa", plain)
	if bytes.Equal(a, b) {
		t.Error("two seals of one value are equal: the nonce is not fresh")
	}
	if bytes.Contains(a, plain) {
		t.Error("sealed value contains the plaintext")
	}
	got, err := k.Open("cqgate:tok:aa", a)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if a[0] != sealVersion || string(a[2:2+int(a[1])]) != k.CurrentID() {
		t.Errorf("header %x does not carry version %d and key id %q", a[:2+int(a[1])], sealVersion, k.CurrentID())
	}
}

func TestOpenRefuses(t *testing.T) {
	k, _ := NewKeyring("cur:" + testKey(1))
	plain := []byte("access-token-secret")
	sealed, _ := k.Seal("cqgate:tok:aa", plain)
	hdr := 2 + len("cur")
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	other, _ := NewKeyring("old:" + testKey(2))
	fromOther, _ := other.Seal("cqgate:tok:aa", plain)
	tests := []struct {
		name   string
		keyNm  string
		sealed []byte
		want   error
	}{
		{"moved to another key name", "cqgate:tok:bb", sealed, ErrTampered},
		{"ciphertext altered", "cqgate:tok:aa", flip(len(sealed) - 20), ErrTampered},
		{"tag altered", "cqgate:tok:aa", flip(len(sealed) - 1), ErrTampered},
		{"nonce altered", "cqgate:tok:aa", flip(hdr), ErrTampered},
		{"version altered", "cqgate:tok:aa", flip(0), ErrNotSealed},
		{"key id altered", "cqgate:tok:aa", flip(2), ErrUnknownKey},
		{"truncated", "cqgate:tok:aa", sealed[:hdr+5], ErrNotSealed},
		{"empty", "cqgate:tok:aa", nil, ErrNotSealed},
		{"plaintext", "cqgate:tok:aa", plain, ErrNotSealed},
		{"sealed under a key not held", "cqgate:tok:aa", fromOther, ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := k.Open(tt.keyNm, tt.sealed)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open: %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("Open returned %q with an error", got)
			}
			if strings.Contains(err.Error(), string(plain)) {
				t.Errorf("error %q contains the plaintext", err)
			}
		})
	}
	var kie *KeyIDError
	if _, err := k.Open("cqgate:tok:aa", fromOther); !errors.As(err, &kie) || kie.ID != "old" {
		t.Errorf("unknown key error %v does not name key id old", err)
	}
}

func TestRotation(t *testing.T) {
	old, _ := NewKeyring(testKey(1))
	sealedOld, _ := old.Seal("n", []byte("v1"))

	rotated, err := NewKeyring(testKey(2), testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	if rotated.CurrentID() == old.CurrentID() {
		t.Fatal("derived key ids of two keys are equal")
	}
	if got, err := rotated.Open("n", sealedOld); err != nil || string(got) != "v1" {
		t.Fatalf("value sealed under the previous key: %q, %v", got, err)
	}
	sealedNew, _ := rotated.Seal("n", []byte("v2"))
	if got, err := rotated.Open("n", sealedNew); err != nil || string(got) != "v2" {
		t.Fatalf("value sealed under the current key: %q, %v", got, err)
	}
	if _, err := old.Open("n", sealedNew); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("a replica without the new key: %v, want ErrUnknownKey", err)
	}
	retired, _ := NewKeyring(testKey(2))
	if _, err := retired.Open("n", sealedOld); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("after the old key is retired: %v, want ErrUnknownKey", err)
	}
	if ids := rotated.IDs(); len(ids) != 2 || ids[0] != rotated.CurrentID() {
		t.Errorf("IDs = %v", ids)
	}
}

func TestNewKeyringErrors(t *testing.T) {
	secret := testKey(7)
	tests := []struct {
		name     string
		current  string
		previous []string
		want     []string
	}{
		{"not base64", "!!" + secret[2:], nil, []string{"cluster.encryption_key: not standard base64"}},
		{"too short", base64.StdEncoding.EncodeToString([]byte("short")), nil, []string{"cluster.encryption_key: 5 bytes, must be 32"}},
		{"bad id", "bad id:" + secret, nil, []string{`cluster.encryption_key: key id "bad id"`}},
		{"same key twice", secret, []string{secret}, []string{`cluster.previous_encryption_keys[0]: key id "` + KeyID(bytes.Repeat([]byte{7}, KeySize)) + `" is used twice`}},
		{"several", "x", []string{"y", secret}, []string{"cluster.encryption_key:", "cluster.previous_encryption_keys[0]:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewKeyring(tt.current, tt.previous...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secret[4:]) {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
}
