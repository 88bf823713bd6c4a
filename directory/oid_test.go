package directory

import (
	"errors"
	"strings"
	"testing"
)

func TestParseOID(t *testing.T) {
	long := "2." + strings.Repeat("1.", 63) + "1" // 2 + 126 + 1 = 129 chars
	maxLen := "2." + strings.Repeat("1.", 62) + "11"

	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "bare", in: "2.16.840.1.113883.3.13.1", want: "2.16.840.1.113883.3.13.1"},
		{name: "urn prefix", in: "urn:oid:2.16.840.1.113883.3.13.1", want: "2.16.840.1.113883.3.13.1"},
		{name: "urn prefix upper case", in: "URN:OID:1.2.840.10008", want: "1.2.840.10008"},
		{name: "urn prefix mixed case", in: "Urn:Oid:0.9.2342", want: "0.9.2342"},
		{name: "urn prefix, upper-case OID part", in: "urn:OID:2.16.840.1.113883.3.13.1", want: "2.16.840.1.113883.3.13.1"},
		{name: "zero arcs inside", in: "2.16.0.0.1", want: "2.16.0.0.1"},
		{name: "128 characters with urn prefix", in: "urn:oid:" + maxLen, want: maxLen},
		{name: "two arcs", in: "1.3", want: "1.3"},
		{name: "zero arcs", in: "0.0", want: "0.0"},
		{name: "second arc 39 under 1", in: "1.39.5", want: "1.39.5"},
		{name: "large second arc under 2", in: "2.999.1", want: "2.999.1"},
		{name: "UUID-sized arc", in: "2.25.329800735698586629295641978511506172918", want: "2.25.329800735698586629295641978511506172918"},
		{name: "128 characters", in: maxLen, want: maxLen},

		{name: "empty", in: "", wantErr: true},
		{name: "urn prefix only", in: "urn:oid:", wantErr: true},
		{name: "single arc", in: "2", wantErr: true},
		{name: "first arc 3", in: "3.1.2", wantErr: true},
		{name: "second arc 40 under 1", in: "1.40", wantErr: true},
		{name: "second arc 40 under 0", in: "0.40.1", wantErr: true},
		{name: "second arc leading zero", in: "1.02.3", wantErr: true},
		{name: "leading zero", in: "2.16.0840", wantErr: true},
		{name: "empty arc", in: "2.16..840", wantErr: true},
		{name: "trailing dot", in: "2.16.840.", wantErr: true},
		{name: "leading dot", in: ".2.16", wantErr: true},
		{name: "letters", in: "2.16.abc", wantErr: true},
		{name: "negative arc", in: "2.-1", wantErr: true},
		{name: "leading whitespace", in: " 2.16.840", wantErr: true},
		{name: "inner whitespace", in: "2.16. 840", wantErr: true},
		{name: "trailing newline", in: "2.16.840\n", wantErr: true},
		{name: "too long", in: long, wantErr: true},
		{name: "other urn", in: "urn:uuid:2.16.840", wantErr: true},
		{name: "double prefix", in: "urn:oid:urn:oid:2.16.840", wantErr: true},
		{name: "unicode digits", in: "2.١٦", wantErr: true},
		{name: "fullwidth digits", in: "２.１６.８４０", wantErr: true},
		{name: "one fullwidth digit", in: "2.16.８40", wantErr: true},
		{name: "superscript digit", in: "2.16.²", wantErr: true},
		{name: "urn prefix, space after it", in: "urn:oid: 2.16.840", wantErr: true},
		{name: "urn prefix, space inside it", in: "urn: oid:2.16.840", wantErr: true},
		{name: "urn prefix, leading space", in: " urn:oid:2.16.840", wantErr: true},
		{name: "urn prefix, trailing space", in: "urn:oid:2.16.840 ", wantErr: true},
		{name: "urn prefix, tab", in: "urn:oid:\t2.16.840", wantErr: true},
		{name: "urn prefix, NUL", in: "urn:oid:2.16.840\x00", wantErr: true},
		{name: "urn prefix, leading zero", in: "urn:oid:2.16.0840", wantErr: true},
		{name: "urn prefix, leading zero in first arc", in: "URN:OID:02.16", wantErr: true},
		{name: "urn prefix, empty arc", in: "urn:oid:2..16", wantErr: true},
		{name: "urn prefix, leading dot", in: "urn:oid:.2.16", wantErr: true},
		{name: "urn prefix without colon", in: "urn:oid2.16.840", wantErr: true},
		{name: "urn prefix, no oid part", in: "URN:OID:", wantErr: true},
		{name: "plus sign", in: "2.+16", wantErr: true},
		{name: "exponent", in: "2.1e3", wantErr: true},
		{name: "1000 characters", in: "2." + strings.Repeat("1.", 498) + "11", wantErr: true},
		{name: "1000 characters with urn prefix", in: "urn:oid:2." + strings.Repeat("1.", 494) + "11", wantErr: true},
		{name: "one huge arc", in: "2." + strings.Repeat("9", 998), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOID(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseOID(%q) = %q, want error", tt.in, got)
				}
				if !errors.Is(err, ErrInvalidOID) {
					t.Errorf("ParseOID(%q) error %v does not wrap ErrInvalidOID", tt.in, err)
				}
				if !strings.HasPrefix(err.Error(), "directory: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseOID(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseOID(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseOIDErrorQuotesSanitizedTruncatedInput(t *testing.T) {
	in := "2.16.\x1b[31mred\n" + strings.Repeat("9", 500)
	_, err := ParseOID(in)
	if err == nil {
		t.Fatal("want error")
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\x1b\n") {
		t.Errorf("error message holds raw control characters: %q", msg)
	}
	if !strings.Contains(msg, `\x1b[31mred\n`) {
		t.Errorf("error message %q does not quote the input escaped", msg)
	}
	if len(msg) > 200 {
		t.Errorf("error message is %d bytes long, want the input truncated: %q", len(msg), msg)
	}
}
