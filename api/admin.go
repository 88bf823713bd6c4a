package api

import (
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"
)

// NewAdmin returns the admin listener's router: /healthz, /readyz, the
// metrics at cfg.MetricsPath and, with cfg.Pprof, net/http/pprof under
// /debug/pprof/. Nothing on it reaches a partner, the directory or Vault.
// Use it with cfg.SeparateAdmin set on New's Config.
func NewAdmin(cfg Config) *gin.Engine {
	h := newHandlers(cfg)
	served := "/healthz, /readyz"
	if cfg.Metrics != nil && cfg.MetricsPath != "" {
		served += ", " + cfg.MetricsPath
	}
	if cfg.Pprof {
		served += ", /debug/pprof/"
	}
	r := h.engine(served + " (the FHIR API is on the main listener)")
	h.opsRoutes(r)
	if cfg.Pprof {
		r.GET("/debug/pprof/*name", gin.WrapF(servePprof))
		r.POST("/debug/pprof/symbol", gin.WrapF(pprof.Symbol))
	}
	return r
}

// servePprof dispatches /debug/pprof/{name} as net/http/pprof's default
// mux does.
func servePprof(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r) // the index, and every named profile
	}
}

func newHandlers(cfg Config) *handlers {
	log := cfg.Logger
	if log == nil {
		log = logrus.New()
	}
	return &handlers{Config: cfg, log: log, anonymous: anonymousIdentity()}
}
