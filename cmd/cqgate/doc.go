// Command cqgate runs the Carequality client-assertion gateway.
//
//	cqgate -config /etc/cqgate/config.yaml   run against a real directory and Vault
//	cqgate -dev                              run on the built-in sandbox tenant
//	cqgate -config config.yaml -check        validate the configuration and exit
//	cqgate resolve|assert|token|register <oid> [-config FILE | -dev]   operator commands
//	cqgate version                           version, VCS revision, Go version
//	cqgate help [command]                    list the commands or explain one
package main
