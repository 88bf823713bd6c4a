package vaulttest

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// TokenOptions describes a token the server issues: from CreateToken, or
// on login for an AppRole or Kubernetes role.
type TokenOptions struct {
	// TTL is the token's lease. Zero means the token never expires, like a
	// root token (lookup-self then reports ttl 0 and no expire_time).
	TTL time.Duration
	// MaxTTL caps the lifetime, counted from issue: a renewal never extends
	// the token past it (Vault answers with a shorter lease and a warning).
	// Zero means no cap.
	MaxTTL time.Duration
	// Renewable says whether auth/token/renew-self may extend the token.
	Renewable bool
	// Policies are reported by lookup-self and login; ["default"] if empty.
	// They grant nothing: every valid token may do everything.
	Policies []string
}

// AppRole is an AppRole role: RoleID and SecretID log in and get a token
// shaped by Token.
type AppRole struct {
	RoleID   string
	SecretID string
	Token    TokenOptions
}

// KubernetesRole is a Kubernetes auth role: a login with JWT gets a token
// shaped by Token. The fake does not verify the JWT, it compares it.
type KubernetesRole struct {
	JWT                     string
	ServiceAccountName      string
	ServiceAccountNamespace string
	Token                   TokenOptions
}

type appRole struct {
	name string
	AppRole
}

type k8sRole struct {
	name string
	KubernetesRole
}

type tokenEntry struct {
	id, accessor string
	policies     []string
	path         string
	displayName  string
	meta         map[string]string
	issued       time.Time
	ttl, maxTTL  time.Duration
	expire       time.Time // zero: never
	renewable    bool
	revoked      bool
}

func (t *tokenEntry) valid(now time.Time) bool {
	return !t.revoked && (t.expire.IsZero() || now.Before(t.expire))
}

// CreateToken issues a token, as `vault token create` would, and returns it.
func (s *Server) CreateToken(opts TokenOptions) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked(opts, "auth/token/create", "token", nil).id
}

// RevokeToken revokes a token; requests with it then answer 403.
func (s *Server) RevokeToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tokens[token]; t != nil {
		t.revoked = true
	}
}

// TokenValid reports whether token is currently accepted.
func (s *Server) TokenValid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[token]
	return t != nil && t.valid(time.Now())
}

// AddAppRole enables the AppRole auth method at mount ("approle" if empty)
// if needed and defines role there. Defining a role again replaces it.
func (s *Server) AddAppRole(mount, role string, r AppRole) {
	mount = authMount(mount, "approle")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.approles[mount] == nil {
		s.approles[mount] = make(map[string]*appRole)
	}
	s.approles[mount][role] = &appRole{name: role, AppRole: r}
}

// AddKubernetesRole enables the Kubernetes auth method at mount
// ("kubernetes" if empty) if needed and defines role there. Defining a role
// again replaces it.
func (s *Server) AddKubernetesRole(mount, role string, r KubernetesRole) {
	mount = authMount(mount, "kubernetes")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kubernetes[mount] == nil {
		s.kubernetes[mount] = make(map[string]*k8sRole)
	}
	s.kubernetes[mount][role] = &k8sRole{name: role, KubernetesRole: r}
}

func authMount(mount, def string) string {
	mount = strings.Trim(strings.TrimPrefix(strings.Trim(mount, "/"), "auth/"), "/")
	if mount == "" {
		return def
	}
	return mount
}

func (s *Server) issueLocked(opts TokenOptions, path, display string, meta map[string]string) *tokenEntry {
	now := time.Now().UTC()
	policies := opts.Policies
	if len(policies) == 0 {
		policies = []string{"default"}
	}
	t := &tokenEntry{
		id:          "hvs." + randomID(),
		accessor:    randomID(),
		policies:    append([]string(nil), policies...),
		path:        path,
		displayName: display,
		meta:        meta,
		issued:      now,
		ttl:         opts.TTL,
		maxTTL:      opts.MaxTTL,
		renewable:   opts.Renewable,
	}
	if opts.TTL > 0 {
		t.expire = now.Add(opts.TTL)
	}
	s.tokens[t.id] = t
	return t
}

// authenticate returns the entry of the request's valid token, or nil.
func (s *Server) authenticate(r *http.Request) *tokenEntry {
	token := r.Header.Get("X-Vault-Token")
	if token == "" {
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			token = bearer
		}
	}
	if token == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.tokens {
		if subtle.ConstantTimeCompare([]byte(id), []byte(token)) == 1 && t.valid(time.Now()) {
			return t
		}
	}
	return nil
}

// login answers POST auth/<mount>/login for AppRole and Kubernetes mounts,
// which need no token. It reports whether path was such a login.
func (s *Server) login(w http.ResponseWriter, r *http.Request, path string, body map[string]any) bool {
	rest, ok := strings.CutPrefix(path, "auth/")
	if !ok {
		return false
	}
	mount, ok := strings.CutSuffix(rest, "/login")
	if !ok {
		return false
	}
	s.mu.Lock()
	approles, isAppRole := s.approles[mount]
	k8s, isK8s := s.kubernetes[mount]
	s.mu.Unlock()
	if !isAppRole && !isK8s {
		return false
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		return true
	}
	if isAppRole {
		s.appRoleLogin(w, mount, approles, body)
	} else {
		s.kubernetesLogin(w, mount, k8s, body)
	}
	return true
}

func (s *Server) appRoleLogin(w http.ResponseWriter, mount string, roles map[string]*appRole, body map[string]any) {
	roleID, _ := body["role_id"].(string)
	secretID, _ := body["secret_id"].(string)
	if roleID == "" {
		writeErrors(w, http.StatusBadRequest, "missing role_id")
		return
	}
	s.mu.Lock()
	var role *appRole
	for _, r := range roles {
		if subtle.ConstantTimeCompare([]byte(r.RoleID), []byte(roleID)) == 1 {
			role = r
		}
	}
	if role == nil || subtle.ConstantTimeCompare([]byte(role.SecretID), []byte(secretID)) != 1 {
		s.mu.Unlock()
		writeErrors(w, http.StatusBadRequest, "invalid role or secret ID")
		return
	}
	t := s.issueLocked(role.Token, "auth/"+mount+"/login", mount, map[string]string{"role_name": role.name})
	resp := authEnvelope(t)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) kubernetesLogin(w http.ResponseWriter, mount string, roles map[string]*k8sRole, body map[string]any) {
	roleName, _ := body["role"].(string)
	jwt, _ := body["jwt"].(string)
	switch {
	case roleName == "":
		writeErrors(w, http.StatusBadRequest, "missing role")
		return
	case jwt == "":
		writeErrors(w, http.StatusBadRequest, "missing jwt")
		return
	}
	s.mu.Lock()
	role := roles[roleName]
	if role == nil {
		s.mu.Unlock()
		writeErrors(w, http.StatusBadRequest, fmt.Sprintf("invalid role name %q", roleName))
		return
	}
	if subtle.ConstantTimeCompare([]byte(role.JWT), []byte(jwt)) != 1 {
		s.mu.Unlock()
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	t := s.issueLocked(role.Token, "auth/"+mount+"/login", mount+"-"+role.ServiceAccountNamespace+"-"+role.ServiceAccountName, map[string]string{
		"role":                        role.name,
		"service_account_name":        role.ServiceAccountName,
		"service_account_namespace":   role.ServiceAccountNamespace,
		"service_account_secret_name": "",
		"service_account_uid":         randomUUID(),
	})
	resp := authEnvelope(t)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

// secretAuth is the "auth" object of a login or renew answer.
type secretAuth struct {
	ClientToken    string            `json:"client_token"`
	Accessor       string            `json:"accessor"`
	Policies       []string          `json:"policies"`
	TokenPolicies  []string          `json:"token_policies"`
	Metadata       map[string]string `json:"metadata"`
	LeaseDuration  int64             `json:"lease_duration"`
	Renewable      bool              `json:"renewable"`
	EntityID       string            `json:"entity_id"`
	TokenType      string            `json:"token_type"`
	Orphan         bool              `json:"orphan"`
	MFARequirement any               `json:"mfa_requirement"`
	NumUses        int               `json:"num_uses"`
}

func authEnvelope(t *tokenEntry) envelope {
	return authEnvelopeTTL(t, t.ttl, nil)
}

func authEnvelopeTTL(t *tokenEntry, lease time.Duration, warnings []string) envelope {
	return envelope{
		RequestID: randomUUID(),
		Warnings:  warnings,
		Auth: secretAuth{
			ClientToken:   t.id,
			Accessor:      t.accessor,
			Policies:      t.policies,
			TokenPolicies: t.policies,
			Metadata:      t.meta,
			LeaseDuration: int64(lease / time.Second),
			Renewable:     t.renewable,
			TokenType:     "service",
			Orphan:        true,
		},
	}
}

// lookupSelf is GET /auth/token/lookup-self, shaped like Vault's answer for
// a service token.
func (s *Server) lookupSelf(w http.ResponseWriter, r *http.Request, t *tokenEntry) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		return
	}
	s.mu.Lock()
	var (
		ttl    int64
		expire any // null for tokens that never expire
	)
	if !t.expire.IsZero() {
		ttl = max(int64(time.Until(t.expire)/time.Second), 0)
		expire = t.expire.Format(time.RFC3339Nano)
	}
	var meta any
	if len(t.meta) > 0 {
		meta = t.meta
	}
	data := map[string]any{
		"accessor":         t.accessor,
		"creation_time":    t.issued.Unix(),
		"creation_ttl":     int64(t.ttl / time.Second),
		"display_name":     t.displayName,
		"entity_id":        "",
		"expire_time":      expire,
		"explicit_max_ttl": int64(t.maxTTL / time.Second),
		"id":               t.id,
		"issue_time":       t.issued.Format(time.RFC3339Nano),
		"meta":             meta,
		"num_uses":         0,
		"orphan":           false,
		"path":             t.path,
		"policies":         t.policies,
		"renewable":        t.renewable,
		"ttl":              ttl,
		"type":             "service",
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, envelope{RequestID: randomUUID(), Data: data, MountType: "token"})
}

// renewSelf is PUT/POST /auth/token/renew-self: the lease is extended by
// the increment (or the token's TTL), but never past its max TTL.
func (s *Server) renewSelf(w http.ResponseWriter, r *http.Request, t *tokenEntry, body map[string]any) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		return
	}
	inc, err := intParam(body, "increment")
	if err != nil {
		writeErrors(w, http.StatusBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	if !t.renewable {
		s.mu.Unlock()
		writeErrors(w, http.StatusBadRequest, "lease is not renewable")
		return
	}
	now := time.Now().UTC()
	lease := t.ttl
	if inc > 0 {
		lease = time.Duration(inc) * time.Second
	}
	var warnings []string
	if t.maxTTL > 0 {
		if remaining := t.issued.Add(t.maxTTL).Sub(now); lease > remaining {
			warnings = append(warnings, fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly",
				lease.String(), remaining.Truncate(time.Second).String()))
			lease = max(remaining, 0)
		}
	}
	if t.ttl > 0 {
		t.expire = now.Add(lease)
	}
	resp := authEnvelopeTTL(t, lease, warnings)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}
