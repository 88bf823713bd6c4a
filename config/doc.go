// Package config is cqgate's configuration: the YAML file documented by
// config.example.yaml, overridden by CQGATE_* environment variables, then
// by command-line flags. Validate reports every problem at once, so an
// operator fixes a bad file in one pass.
package config
