package gateway

import (
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/callerauth"
)

// policyRules are the callers' rules, or, with inbound.auth none and no
// callers listed, the safe default: the anonymous caller may read (GET,
// HEAD, POST .../_search) from every organization and write nothing.
// Writes need a callers.anonymous entry that lists the methods. With
// authentication on and no callers, validation has already refused the
// configuration (every request would be denied).
func policyRules(in config.Inbound) map[string]callerauth.Rule {
	if len(in.Callers) == 0 && in.Auth == callerauth.MethodNone {
		return map[string]callerauth.Rule{callerauth.AnonymousCaller: {Organizations: []string{"*"}}}
	}
	return in.PolicyRules()
}
