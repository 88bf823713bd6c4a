package proxy

// manifestVerdict is what the top-level keys of a JSON answer say of it.
type manifestVerdict int8

const (
	// undecided: no key has settled it yet; read on.
	undecided manifestVerdict = iota
	// notAManifest: a FHIR resource (a top-level "resourceType"), a key
	// no bulk manifest has, or not a JSON object at all.
	notAManifest
	// mayBeManifest: a key only manifests have, or an object whose keys
	// are all manifest keys. The answer is read whole and parsed
	// (rewriteManifest has the last word).
	mayBeManifest
)

const (
	// maxKeyLen bounds a top-level key worth looking at: longer than any
	// key of a bulk manifest (and than "resourceType").
	maxKeyLen = 32
	// maxUndecided is how much of an answer readHead reads while the
	// keys leave it open (leading whitespace, values of "request",
	// "link", "extension", a key with an escape): past it the answer is
	// read whole, as one that may be a manifest, and parsed
	// (rewriteManifest decides; a manifest is never passed unsealed).
	maxUndecided = 64 << 10
)

// keyScan reads a JSON answer's top-level object keys as its bytes
// arrive, in order, and stops at the first that settles whether it may
// be a bulk data manifest (Bulk Data Access IG, the complete status
// answer: transactionTime, request, requiresAccessToken, output, error,
// optional deleted, link, extension and the STU4 output* fields; the IG
// reserves "extension" for anything else a server adds):
//
//   - "resourceType": a FHIR resource, which no manifest is;
//   - a key only manifests have (transactionTime, requiresAccessToken,
//     deleted, error, manifestType, outputFormat, ...), or "output"
//     (Task.output too, but never a sorted Task's first key, as its
//     required "intent" and "status" come before): read whole;
//   - a key both have (request; link; extension): read on;
//   - any other key: not a manifest.
//
// Keys are read where they are, whatever order the server writes them
// in: a server that sorts its keys puts "deleted" and "error" (with
// their file URLs) before "transactionTime", and a sorted resource opens
// with a key such as "active" or "entry" that settles it at once. A key
// written with escapes is not decoded: it leaves the verdict open. The
// zero value is ready; feed it the answer's bytes in order.
type keyScan struct {
	depth      int  // 1 inside the top-level object
	started    bool // the top-level value began
	inString   bool
	escaped    bool
	expectKey  bool // at depth 1, the next string is a key
	collecting bool // the string being read is a top-level key
	keyEsc     bool // that key has an escape
	keyLen     int  // its length; more than maxKeyLen: too long to matter
	key        [maxKeyLen]byte
}

// feed scans the next bytes of the answer. Once it returns a verdict
// other than undecided, the scan is over.
func (s *keyScan) feed(p []byte) manifestVerdict {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if s.inString {
			switch {
			case s.escaped:
				s.escaped = false
			case c == '\\':
				s.escaped, s.keyEsc = true, true
			case c == '"':
				s.inString = false
				if s.collecting {
					s.collecting = false
					if v := s.verdict(); v != undecided {
						return v
					}
				}
			case s.collecting:
				if s.keyLen < maxKeyLen {
					s.key[s.keyLen] = c
				}
				s.keyLen++
			}
			continue
		}
		if !s.started {
			switch c {
			case '{':
				s.started, s.depth, s.expectKey = true, 1, true
			case ' ', '\t', '\r', '\n', 0xEF, 0xBB, 0xBF: // JSON whitespace, a UTF-8 byte order mark
			default:
				return notAManifest // not an object
			}
			continue
		}
		switch c {
		case '"':
			s.inString = true
			if s.depth == 1 && s.expectKey {
				s.collecting, s.expectKey, s.keyEsc, s.keyLen = true, false, false, 0
			}
		case '{', '[':
			s.depth++
		case '}', ']':
			s.depth--
			if s.depth == 0 {
				// The whole object, and only keys a manifest may have.
				return mayBeManifest
			}
		case ',':
			if s.depth == 1 {
				s.expectKey = true
			}
		}
	}
	return undecided
}

// verdict is what the top-level key just read says.
func (s *keyScan) verdict() manifestVerdict {
	if s.keyEsc {
		return undecided
	}
	if s.keyLen > maxKeyLen {
		return notAManifest
	}
	switch string(s.key[:s.keyLen]) {
	case "resourceType":
		return notAManifest
	case "transactionTime", "requiresAccessToken", "deleted", "error", "output",
		"manifestType", "outputFormat", "outputOrganizedBy", "outputOrganizedByDetail":
		return mayBeManifest
	case "request", "link", "extension":
		return undecided
	}
	return notAManifest
}
