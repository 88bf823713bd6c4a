package directory

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
)

// Limits every parser applies to a document before decoding it, so that
// a hostile answer costs bounded memory and time.
const (
	// MaxDocumentBytes bounds the size of a document a parser accepts.
	// A client's MaxBodyBytes larger than this is of no use.
	MaxDocumentBytes = 32 << 20
	// MaxDocumentDepth bounds the nesting of JSON objects and arrays or
	// of XML elements. Directory documents nest about 15 deep.
	MaxDocumentDepth = 64
)

// Bundle is a searchset Bundle of Organizations as a directory search
// answers it.
type Bundle struct {
	// Organizations are the Bundle's matches in document order (the
	// entries with search mode "match" or, when no entry has one, all
	// Organization entries without a search mode; organizations only
	// included, such as a parent, are left out), each with its contained
	// Endpoints followed by the Endpoint entries it references.
	Organizations []*Organization
	// Total is Bundle.total, the number of matches of the whole search;
	// -1 when the Bundle does not say.
	Total int
	// Next is the URL of the link with relation "next" as the document
	// gave it, "" when there is none. It is untrusted input.
	Next string
}

// isSearchBundleType reports whether a Bundle.type fits a search answer
// ("" when absent).
func isSearchBundleType(t string) bool {
	switch t {
	case "", "searchset", "collection":
		return true
	}
	return false
}

// assembleBundle builds a Bundle from a decoded document's entries.
func assembleBundle(typ string, total int, next string, entries []rawEntry, idFirst bool) (*Bundle, error) {
	if !isSearchBundleType(strings.TrimSpace(typ)) {
		return nil, fmt.Errorf("bundle type is %s, want searchset", quoteInput(typ))
	}
	if total < -1 {
		return nil, fmt.Errorf("bundle total is %d, want a count", total)
	}
	index := indexEndpoints(entries)
	matched := matchedOrganizations(entries)
	b := &Bundle{Total: total, Next: strings.TrimSpace(next), Organizations: make([]*Organization, 0, len(matched))}
	for _, e := range matched {
		org, err := assemble(e.org, index, idFirst)
		if err != nil {
			return nil, fmt.Errorf("bundle entry %d: %w", e.index, err)
		}
		b.Organizations = append(b.Organizations, org)
	}
	return b, nil
}

// checkSize rejects a document larger than MaxDocumentBytes.
func checkSize(data []byte) error {
	if len(data) > MaxDocumentBytes {
		return fmt.Errorf("document is %d bytes long, more than the %d accepted", len(data), MaxDocumentBytes)
	}
	return nil
}

// checkJSONDepth rejects JSON whose objects and arrays nest deeper than
// MaxDocumentDepth. Syntax errors are left to the decoder.
func checkJSONDepth(data []byte) error {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > MaxDocumentDepth {
				return fmt.Errorf("document nests deeper than %d levels", MaxDocumentDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// checkXMLDepth rejects XML whose elements nest deeper than
// MaxDocumentDepth. Syntax errors are left to the decoder.
func checkXMLDepth(data []byte) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	depth := 0
	for {
		tok, err := d.RawToken()
		if err != nil {
			return nil
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth++; depth > MaxDocumentDepth {
				return fmt.Errorf("document nests deeper than %d levels", MaxDocumentDepth)
			}
		case xml.EndElement:
			depth--
		}
	}
}

// errEmpty is the error for a document holding nothing but white space.
var errEmpty = errors.New("empty document")
