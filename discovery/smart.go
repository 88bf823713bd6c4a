package discovery

// smartConfiguration is the part of a SMART App Launch
// .well-known/smart-configuration document that discovery reads.
type smartConfiguration struct {
	TokenEndpoint                              string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	RegistrationEndpoint                       string   `json:"registration_endpoint"`
	ScopesSupported                            []string `json:"scopes_supported"`
	Capabilities                               []string `json:"capabilities"`
}

// parseSMARTConfiguration parses a smart-configuration document. It
// checks only the document's shape: token_endpoint may be empty or not
// a URL, which the caller judges.
func parseSMARTConfiguration(data []byte) (*smartConfiguration, error) {
	var sc smartConfiguration
	if err := decodeObject(data, &sc); err != nil {
		return nil, err
	}
	return &sc, nil
}
