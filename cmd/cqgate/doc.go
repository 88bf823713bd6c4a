// Command cqgate runs the Carequality client-assertion gateway.
//
//	cqgate -config /etc/cqgate/config.yaml   run against a real directory and Vault
//	cqgate -dev                              run on the built-in sandbox tenant
//	cqgate -config config.yaml -check        validate the configuration and exit
package main
