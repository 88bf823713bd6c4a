package vaulttest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cqgate/cqgate/internal/vaulttest"
)

const token = "hvs.vaulttest-token"

func TestKVv2RoundTripWithVaultAPI(t *testing.T) {
	srv := vaulttest.New(t, token)
	kv := srv.Client(t).KVv2("secret")
	ctx := context.Background()

	w1, err := kv.Put(ctx, "app/config", map[string]any{"user": "alice", "n": 1})
	if err != nil {
		t.Fatalf("Put v1: %v", err)
	}
	if w1.VersionMetadata == nil || w1.VersionMetadata.Version != 1 || w1.VersionMetadata.CreatedTime.IsZero() {
		t.Fatalf("Put v1 metadata = %+v, want version 1 with created_time", w1.VersionMetadata)
	}
	if _, err := kv.Put(ctx, "app/config", map[string]any{"user": "bob"}); err != nil {
		t.Fatalf("Put v2: %v", err)
	}
	if v := srv.Put("secret", "app/config", map[string]any{"user": "carol"}); v != 3 {
		t.Fatalf("Server.Put version = %d, want 3", v)
	}

	got, err := kv.Get(ctx, "app/config")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Data["user"] != "carol" || got.VersionMetadata.Version != 3 {
		t.Fatalf("Get = %v v%d, want carol v3", got.Data, got.VersionMetadata.Version)
	}
	if got.Raw.MountType != "kv" {
		t.Errorf("mount_type = %q, want kv", got.Raw.MountType)
	}
	old, err := kv.GetVersion(ctx, "app/config", 1)
	if err != nil {
		t.Fatalf("GetVersion(1): %v", err)
	}
	if old.Data["user"] != "alice" || old.Data["n"] != json.Number("1") {
		t.Fatalf("GetVersion(1) = %v, want alice/1", old.Data)
	}
	if _, err := kv.GetVersion(ctx, "app/config", 9); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("GetVersion(9) err = %v, want ErrSecretNotFound", err)
	}
	versions, err := kv.GetVersionsAsList(ctx, "app/config")
	if err != nil || len(versions) != 3 {
		t.Fatalf("GetVersionsAsList = %d versions, %v; want 3", len(versions), err)
	}
	md, err := kv.GetMetadata(ctx, "app/config")
	if err != nil || md.CurrentVersion != 3 || md.OldestVersion != 1 {
		t.Fatalf("GetMetadata = %+v, %v", md, err)
	}

	// Soft delete of the latest version: Get answers with metadata only.
	if err := kv.Delete(ctx, "app/config"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	deleted, err := kv.Get(ctx, "app/config")
	if err != nil {
		t.Fatalf("Get after Delete: %v", err)
	}
	if deleted.Data != nil || deleted.VersionMetadata.DeletionTime.IsZero() {
		t.Fatalf("Get after Delete = %v, %+v; want no data and a deletion time", deleted.Data, deleted.VersionMetadata)
	}

	// Metadata delete removes every version.
	if err := kv.DeleteMetadata(ctx, "app/config"); err != nil {
		t.Fatalf("DeleteMetadata: %v", err)
	}
	if _, err := kv.Get(ctx, "app/config"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("Get after DeleteMetadata err = %v, want ErrSecretNotFound", err)
	}

	if n := srv.RequestsFor("secret/data/app/config"); n < 5 {
		t.Errorf("RequestsFor(data path) = %d, want >= 5", n)
	}
	if a, b := srv.RequestsFor("/v1/secret/metadata/app/config"), srv.RequestsFor("secret/metadata/app/config"); a != b || a != 3 {
		t.Errorf("RequestsFor(metadata) = %d / %d, want 3 both ways", a, b)
	}
	if srv.Requests() < 10 {
		t.Errorf("Requests() = %d, want >= 10", srv.Requests())
	}
}

func TestClientErrors(t *testing.T) {
	srv := vaulttest.New(t, token, "secret", "kv/team")
	srv.Put("kv/team", "app", map[string]any{"k": "v"})
	ctx := context.Background()

	wrong := srv.Client(t)
	wrong.SetToken("not-the-token")
	noToken := srv.Client(t)
	noToken.ClearToken()

	tests := []struct {
		name     string
		client   *api.Client
		mount    string
		path     string
		wantCode int  // ResponseError status, 0 for none
		notFound bool // errors.Is(err, api.ErrSecretNotFound)
		wantMsg  string
	}{
		{name: "nested mount ok", client: srv.Client(t), mount: "kv/team", path: "app"},
		{name: "wrong token", client: wrong, mount: "kv/team", path: "app", wantCode: 403, wantMsg: "permission denied"},
		{name: "no token", client: noToken, mount: "kv/team", path: "app", wantCode: 403, wantMsg: "permission denied"},
		{name: "missing secret", client: srv.Client(t), mount: "secret", path: "nope", notFound: true},
		{name: "unknown mount", client: srv.Client(t), mount: "nomount", path: "app", notFound: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.KVv2(tc.mount).Get(ctx, tc.path)
			switch {
			case tc.wantCode != 0:
				var re *api.ResponseError
				if !errors.As(err, &re) || re.StatusCode != tc.wantCode {
					t.Fatalf("err = %v, want ResponseError %d", err, tc.wantCode)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("err = %v, want %q", err, tc.wantMsg)
				}
			case tc.notFound:
				if !errors.Is(err, api.ErrSecretNotFound) {
					t.Fatalf("err = %v, want ErrSecretNotFound", err)
				}
			default:
				if err != nil {
					t.Fatalf("err = %v", err)
				}
			}
		})
	}

	t.Run("check-and-set mismatch", func(t *testing.T) {
		_, err := srv.Client(t).KVv2("kv/team").Put(ctx, "app", map[string]any{"k": "x"}, api.WithCheckAndSet(7))
		if err == nil || !strings.Contains(err.Error(), "check-and-set parameter did not match the current version") {
			t.Fatalf("err = %v, want check-and-set error", err)
		}
		if _, err := srv.Client(t).KVv2("kv/team").Put(ctx, "app", map[string]any{"k": "x"}, api.WithCheckAndSet(1)); err != nil {
			t.Fatalf("cas=1: %v", err)
		}
	})
}

func TestSetDown(t *testing.T) {
	srv := vaulttest.New(t, token)
	srv.Put("secret", "app", map[string]any{"k": "v"})
	c := srv.Client(t)
	ctx := context.Background()

	srv.SetDown(true)
	_, err := c.KVv2("secret").Get(ctx, "app")
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "Vault is sealed") {
		t.Fatalf("Get while down err = %v, want 503 Vault is sealed", err)
	}
	h, err := c.Sys().Health()
	if err != nil || !h.Sealed || !h.Initialized {
		t.Fatalf("Health while down = %+v, %v; want sealed", h, err)
	}

	srv.SetDown(false)
	if _, err := c.KVv2("secret").Get(ctx, "app"); err != nil {
		t.Fatalf("Get after recovery: %v", err)
	}
	h, err = c.Sys().Health()
	if err != nil || h.Sealed || h.Version != vaulttest.VaultVersion || h.ClusterName == "" || h.ClusterID == "" || h.ServerTimeUTC == 0 {
		t.Fatalf("Health = %+v, %v", h, err)
	}
}

func TestLookupSelf(t *testing.T) {
	srv := vaulttest.New(t, token)
	c := srv.Client(t)
	s, err := c.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatalf("LookupSelf: %v", err)
	}
	ttl, err := s.TokenTTL()
	if err != nil || ttl <= 0 || ttl > 768*time.Hour {
		t.Fatalf("TokenTTL = %v, %v", ttl, err)
	}
	if renewable, _ := s.TokenIsRenewable(); !renewable {
		t.Error("token not renewable")
	}
	if pols, _ := s.TokenPolicies(); len(pols) == 0 {
		t.Error("no policies")
	}

	c.SetToken("bad")
	if _, err := c.Auth().Token().LookupSelf(); err == nil {
		t.Fatal("LookupSelf with a bad token succeeded")
	}
}

// TestWireFormat checks bodies, codes and headers byte-level against
// Vault's documented API, without the client library's tolerance.
func TestWireFormat(t *testing.T) {
	srv := vaulttest.New(t, token)

	type call struct {
		method, path, body string
		token              string
	}
	tests := []struct {
		name       string
		call       call
		wantCode   int
		wantKeys   []string // top-level JSON keys, sorted
		wantErrors []string // for error bodies
		check      func(t *testing.T, body map[string]any)
	}{
		{
			name:     "write",
			call:     call{"POST", "/v1/secret/data/wire", `{"data":{"a":"b"},"options":{}}`, token},
			wantCode: 200,
			wantKeys: []string{"auth", "data", "lease_duration", "lease_id", "mount_type", "renewable", "request_id", "warnings", "wrap_info"},
			check: func(t *testing.T, body map[string]any) {
				data := body["data"].(map[string]any)
				wantKeys(t, data, "created_time", "custom_metadata", "deletion_time", "destroyed", "version")
				if data["version"] != float64(1) || data["deletion_time"] != "" || data["custom_metadata"] != nil {
					t.Errorf("write data = %v", data)
				}
				if _, err := time.Parse(time.RFC3339Nano, data["created_time"].(string)); err != nil {
					t.Errorf("created_time: %v", err)
				}
			},
		},
		{
			name:     "write with PUT makes version 2",
			call:     call{"PUT", "/v1/secret/data/wire", `{"data":{"a":"c"}}`, token},
			wantCode: 200,
			check: func(t *testing.T, body map[string]any) {
				if v := body["data"].(map[string]any)["version"]; v != float64(2) {
					t.Errorf("version = %v, want 2", v)
				}
			},
		},
		{
			name:     "read",
			call:     call{"GET", "/v1/secret/data/wire", "", token},
			wantCode: 200,
			wantKeys: []string{"auth", "data", "lease_duration", "lease_id", "mount_type", "renewable", "request_id", "warnings", "wrap_info"},
			check: func(t *testing.T, body map[string]any) {
				if body["lease_id"] != "" || body["renewable"] != false || body["lease_duration"] != float64(0) ||
					body["wrap_info"] != nil || body["warnings"] != nil || body["auth"] != nil || body["mount_type"] != "kv" {
					t.Errorf("envelope = %v", body)
				}
				if id, _ := body["request_id"].(string); len(id) != 36 || strings.Count(id, "-") != 4 {
					t.Errorf("request_id = %q, want a UUID", id)
				}
				data := body["data"].(map[string]any)
				wantKeys(t, data, "data", "metadata")
				if got := data["data"].(map[string]any); got["a"] != "c" {
					t.Errorf("data.data = %v", got)
				}
				md := data["metadata"].(map[string]any)
				wantKeys(t, md, "created_time", "custom_metadata", "deletion_time", "destroyed", "version")
				if md["version"] != float64(2) {
					t.Errorf("metadata.version = %v", md["version"])
				}
			},
		},
		{
			name:     "read old version",
			call:     call{"GET", "/v1/secret/data/wire?version=1", "", token},
			wantCode: 200,
			check: func(t *testing.T, body map[string]any) {
				if a := body["data"].(map[string]any)["data"].(map[string]any)["a"]; a != "b" {
					t.Errorf("version 1 a = %v, want b", a)
				}
			},
		},
		{name: "missing path", call: call{"GET", "/v1/secret/data/nope", "", token}, wantCode: 404, wantErrors: []string{}},
		{name: "missing version", call: call{"GET", "/v1/secret/data/wire?version=5", "", token}, wantCode: 404, wantErrors: []string{}},
		{name: "no token", call: call{"GET", "/v1/secret/data/wire", "", ""}, wantCode: 403, wantErrors: []string{"permission denied"}},
		{name: "wrong token", call: call{"GET", "/v1/secret/data/wire", "", "x"}, wantCode: 403, wantErrors: []string{"permission denied"}},
		{
			name: "unknown mount", call: call{"GET", "/v1/nomount/data/wire", "", token}, wantCode: 404,
			wantErrors: []string{`no handler for route "nomount/data/wire". route entry not found.`},
		},
		{name: "write without data", call: call{"POST", "/v1/secret/data/wire", `{"options":{}}`, token}, wantCode: 400, wantErrors: []string{"no data provided"}},
		{
			name: "kv v1 style path", call: call{"GET", "/v1/secret/wire", "", token}, wantCode: 404,
			check: func(t *testing.T, body map[string]any) {
				if w, _ := body["warnings"].([]any); len(w) != 1 || !strings.Contains(w[0].(string), "Invalid path for a versioned K/V secrets engine") {
					t.Errorf("warnings = %v", body["warnings"])
				}
			},
		},
		{
			name: "health needs no token", call: call{"GET", "/v1/sys/health", "", ""}, wantCode: 200,
			check: func(t *testing.T, body map[string]any) {
				wantKeysInclude(t, body, "initialized", "sealed", "standby", "performance_standby",
					"replication_performance_mode", "replication_dr_mode", "server_time_utc", "version", "cluster_name", "cluster_id")
			},
		},
		{
			name: "lookup-self", call: call{"GET", "/v1/auth/token/lookup-self", "", token}, wantCode: 200,
			check: func(t *testing.T, body map[string]any) {
				wantKeysInclude(t, body["data"].(map[string]any), "accessor", "creation_time", "creation_ttl", "display_name",
					"expire_time", "explicit_max_ttl", "id", "issue_time", "policies", "renewable", "ttl", "type")
			},
		},
		{name: "delete metadata", call: call{"DELETE", "/v1/secret/metadata/wire", "", token}, wantCode: 204},
		{name: "gone after delete", call: call{"GET", "/v1/secret/data/wire", "", token}, wantCode: 404, wantErrors: []string{}},
	}
	for _, tc := range tests { // sequential: the cases build on each other
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.call.method, srv.URL+tc.call.path, strings.NewReader(tc.call.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.call.token != "" {
				req.Header.Set("X-Vault-Token", tc.call.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.wantCode, raw)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			if resp.StatusCode == http.StatusNoContent {
				if len(raw) != 0 {
					t.Errorf("204 with body %q", raw)
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			var body map[string]any
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("body %q: %v", raw, err)
			}
			if tc.wantKeys != nil {
				wantKeys(t, body, tc.wantKeys...)
			}
			if tc.wantErrors != nil {
				wantKeys(t, body, "errors")
				got, ok := body["errors"].([]any)
				if !ok {
					t.Fatalf(`"errors" = %#v, want an array (never null)`, body["errors"])
				}
				gotS := make([]string, len(got))
				for i, e := range got {
					gotS[i] = e.(string)
				}
				if !reflect.DeepEqual(gotS, tc.wantErrors) {
					t.Errorf("errors = %q, want %q", gotS, tc.wantErrors)
				}
			}
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}
}

func TestHealthStatusCodes(t *testing.T) {
	srv := vaulttest.New(t, token)
	get := func(q string) int {
		resp, err := http.Get(srv.URL + "/v1/sys/health" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(""); c != 200 {
		t.Errorf("active = %d, want 200", c)
	}
	srv.SetDown(true)
	if c := get(""); c != 503 {
		t.Errorf("sealed = %d, want 503", c)
	}
	if c := get("?sealedcode=299"); c != 299 {
		t.Errorf("sealed with sealedcode=299 = %d", c)
	}
}

func wantKeys(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	var got []string
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	want := append([]string(nil), keys...)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keys = %v, want %v", got, want)
	}
}

func wantKeysInclude(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("missing key %q in %v", k, m)
		}
	}
}
