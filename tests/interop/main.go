// Command pxsec-interop judges tokens the way Portworx does, with the very libraries Portworx uses:
// github.com/golang-jwt/jwt/v4 v4.3.0 and github.com/coreos/go-oidc v2.2.1 (the versions OpenStorage
// pins), so pxsec's own Python verifier (operator/pxsec/verify.py) can be checked against them.
//
// It is written from OpenStorage's rules, not copied. The upstream files whose behaviour it follows
// (libopenstorage/openstorage):
//
//   - pkg/auth/token.go         TokenIssuer: the unverified claims segment (jwt.DecodeSegment) decoded
//     with encoding/json into the Claims struct; an empty iss is "Issuer was not specified".
//   - api/server/sdk (the gRPC interceptor): one authenticator per exact issuer; any other is unknown.
//   - pkg/auth/selfsigned.go    JwtAuthenticator: keys parsed with jwt.ParseRSAPublicKeyFromPEM /
//     jwt.ParseECPublicKeyFromPEM at construction; jwt.Parse with a key function choosing the key by the
//     alg prefix (RS -> RSA, ES -> ECDSA, HS -> shared secret as bytes, else "Unknown token algorithm");
//     the library's own claim validation (MapClaims.Valid, jwt.TimeFunc); the required claims present in
//     the MapClaims; the segment decoded again into Claims; the username claim non-empty.
//   - pkg/auth/oidc.go          OIDCAuthenticator: go-oidc's IDTokenVerifier with the client id; the
//     claims as a map; required claims; namespace+"roles"/"groups" moved to the top; json.Marshal then
//     json.Unmarshal into Claims; the username claim non-empty.
//   - pkg/auth/claims.go        requiredClaims (iss, sub, exp, iat, name, email), the Claims struct
//     (iss, sub, name, email strings; roles, groups string lists), getUsername / validateUsername.
//
// Input (stdin): {"cases": [case, ...]}; output (stdout): {"results": [result, ...]} in the same order.
// Each case carries the clock, so jwt.TimeFunc and oidc.Config.Now are pinned per case. The OIDC key
// set is served to go-oidc's own remote key set through an in-memory HTTP transport, so go-jose parses
// and uses it exactly as it would a provider's jwks_uri.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	oidc "github.com/coreos/go-oidc"
	jwt "github.com/golang-jwt/jwt/v4"
)

// Causes, shared with pxsec.verify (Verdict.cause): the first stage of OpenStorage's path that failed.
const (
	causeAccepted        = "accepted"
	causeMalformed       = "malformed"        // not three base64url segments of JSON, as the library reads them
	causeClaims          = "claims"           // claims do not decode into OpenStorage's (or go-oidc's) struct
	causeNoIssuer        = "no-issuer"        // empty or missing iss
	causeUntrustedIssuer = "untrusted-issuer" // no authenticator for this iss
	causeConfig          = "config"           // the authenticator cannot be built (bad public key)
	causeAlg             = "alg"              // alg missing, unknown to the library, or not for this key kind
	causeNoKey           = "no-key"           // the alg's key kind is not configured for the issuer
	causeSignature       = "signature"        // the signature does not verify
	causeJWKS            = "jwks"             // the provider's key set cannot be decoded
	causeExp             = "exp"
	causeIat             = "iat"
	causeNbf             = "nbf"
	causeAudience        = "audience"
	causeRequiredClaim   = "required-claim"
	causeUsername        = "username"
)

// requiredClaims is pkg/auth/claims.go's list.
var requiredClaims = []string{"iss", "sub", "exp", "iat", "name", "email"}

// claims is the shape of pkg/auth/claims.go's Claims (decoded with encoding/json: case-insensitive names).
type claims struct {
	Issuer  string   `json:"iss"`
	Subject string   `json:"sub"`
	Name    string   `json:"name"`
	Email   string   `json:"email"`
	Roles   []string `json:"roles,omitempty"`
	Groups  []string `json:"groups,omitempty"`
}

type selfSignedConfig struct {
	Issuer         string `json:"issuer"`
	SharedSecret   []byte `json:"sharedSecret"` // base64 in JSON; the Secret's bytes, used as they are
	RSAPublicPEM   string `json:"rsaPublicPem"`
	ECDSAPublicPEM string `json:"ecdsaPublicPem"`
}

type oidcConfig struct {
	Issuer     string   `json:"issuer"`
	ClientID   string   `json:"clientID"`
	Namespace  string   `json:"namespace"`
	JWKS       []byte   `json:"jwks"`       // served as the provider's jwks_uri body (base64 in the case JSON)
	Algorithms []string `json:"algorithms"` // the discovery document's supported algs (go-oidc filters them)
}

type testCase struct {
	ID            string             `json:"id"`
	Token         string             `json:"token"`
	NowUnix       int64              `json:"nowUnix"`
	NowNanos      int64              `json:"nowNanos"`
	UsernameClaim string             `json:"usernameClaim"`
	SelfSigned    []selfSignedConfig `json:"selfSigned"`
	OIDC          *oidcConfig        `json:"oidc"`
}

type result struct {
	ID       string   `json:"id"`
	Accepted bool     `json:"accepted"`
	Cause    string   `json:"cause"`
	Source   string   `json:"source,omitempty"`
	Issuer   string   `json:"issuer,omitempty"`
	Username string   `json:"username"`
	Roles    []string `json:"roles"`
	Groups   []string `json:"groups"`
	Error    string   `json:"error,omitempty"` // the library's own words, for a person reading a failure
}

func reject(cause string, err error) result {
	return result{Cause: cause, Error: err.Error()}
}

// routeIssuer follows pkg/auth/token.go TokenIssuer: fewer than three parts, an undecodable segment or
// claims that do not decode into Claims are errors; so is an empty iss.
func routeIssuer(raw string) (string, string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) < 3 {
		return "", causeMalformed, errors.New("Token is invalid")
	}
	claimBytes, err := jwt.DecodeSegment(parts[1])
	if err != nil {
		return "", causeMalformed, fmt.Errorf("Failed to decode claims: %v", err)
	}
	var c *claims
	if err := json.Unmarshal(claimBytes, &c); err != nil {
		return "", decodeCause(err), fmt.Errorf("Unable to get information from the claims in the token: %v", err)
	}
	if c == nil {
		// OpenStorage would dereference a nil pointer here (claims segment "null"); no verdict but no.
		return "", causeMalformed, errors.New("claims segment is null")
	}
	if c.Issuer == "" {
		return "", causeNoIssuer, errors.New("Issuer was not specified in the token")
	}
	return c.Issuer, "", nil
}

// decodeCause tells a JSON value of the wrong type (the claims' shape) from text that is not JSON.
func decodeCause(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return causeClaims
	}
	return causeMalformed
}

func validateUsername(usernameClaim string, c *claims) error {
	value, name := c.Subject, "sub"
	switch usernameClaim {
	case "email":
		value, name = c.Email, "email"
	case "name":
		value, name = c.Name, "name"
	}
	if value == "" {
		return fmt.Errorf("System set to use the value of %s as the username, therefore the value of %s in the "+
			"token cannot be empty", name, name)
	}
	return nil
}

func username(usernameClaim string, c *claims) string {
	switch usernameClaim {
	case "email":
		return c.Email
	case "name":
		return c.Name
	}
	return c.Subject
}

func accepted(source, issuer, usernameClaim string, c *claims) result {
	roles, groups := c.Roles, c.Groups
	if roles == nil {
		roles = []string{}
	}
	if groups == nil {
		groups = []string{}
	}
	return result{Accepted: true, Cause: causeAccepted, Source: source, Issuer: issuer,
		Username: username(usernameClaim, c), Roles: roles, Groups: groups}
}

// -- self-signed: pkg/auth/selfsigned.go ------------------------------------------------------------------

type jwtAuthenticator struct {
	rsaKey, ecdsKey, sharedSecretKey interface{}
	usernameClaim                    string
}

func newJwtAuth(cfg selfSignedConfig, usernameClaim string) (*jwtAuthenticator, error) {
	if len(cfg.SharedSecret) == 0 && cfg.RSAPublicPEM == "" && cfg.ECDSAPublicPEM == "" {
		return nil, errors.New("Server was passed empty authentication information with no shared secret or pem files set")
	}
	a := &jwtAuthenticator{usernameClaim: usernameClaim}
	if len(cfg.SharedSecret) != 0 {
		a.sharedSecretKey = cfg.SharedSecret
	}
	if cfg.RSAPublicPEM != "" {
		key, err := jwt.ParseRSAPublicKeyFromPEM([]byte(cfg.RSAPublicPEM))
		if err != nil {
			return nil, fmt.Errorf("Unable to parse rsa public key: %v", err)
		}
		a.rsaKey = key
	}
	if cfg.ECDSAPublicPEM != "" {
		key, err := jwt.ParseECPublicKeyFromPEM([]byte(cfg.ECDSAPublicPEM))
		if err != nil {
			return nil, fmt.Errorf("Unable to parse ecds public key: %v", err)
		}
		a.ecdsKey = key
	}
	return a, nil
}

// parseCause maps golang-jwt's ValidationError onto the first failing stage. ParseWithClaims reports
// the claim checks and the signature check together; the signature (or the missing key) comes first.
func parseCause(err error) string {
	var ve *jwt.ValidationError
	if !errors.As(err, &ve) {
		return causeMalformed
	}
	switch {
	case ve.Errors&jwt.ValidationErrorMalformed != 0:
		return causeMalformed
	case ve.Errors&jwt.ValidationErrorUnverifiable != 0:
		return causeAlg
	case ve.Errors&jwt.ValidationErrorSignatureInvalid != 0:
		if errors.Is(ve.Inner, jwt.ErrInvalidKeyType) {
			return causeNoKey
		}
		return causeSignature
	case ve.Errors&jwt.ValidationErrorExpired != 0:
		return causeExp
	case ve.Errors&jwt.ValidationErrorIssuedAt != 0:
		return causeIat
	case ve.Errors&jwt.ValidationErrorNotValidYet != 0:
		return causeNbf
	}
	return causeMalformed
}

func (a *jwtAuthenticator) authenticate(raw, issuer string) result {
	token, err := jwt.Parse(raw, func(token *jwt.Token) (interface{}, error) {
		alg := token.Method.Alg()
		switch {
		case strings.HasPrefix(alg, "RS"):
			return a.rsaKey, nil
		case strings.HasPrefix(alg, "ES"):
			return a.ecdsKey, nil
		case strings.HasPrefix(alg, "HS"):
			return a.sharedSecretKey, nil
		}
		return nil, fmt.Errorf("Unknown token algorithm: %s", alg)
	})
	if err != nil {
		return reject(parseCause(err), err)
	}
	if !token.Valid {
		return reject(causeSignature, errors.New("Token failed validation"))
	}
	mapClaims, ok := token.Claims.(jwt.MapClaims)
	if mapClaims == nil || !ok {
		return reject(causeMalformed, errors.New("No claims found in token"))
	}
	for _, name := range requiredClaims {
		if _, ok := mapClaims[name]; !ok {
			return reject(causeRequiredClaim, fmt.Errorf("Required claim %v missing from token", name))
		}
	}
	parts := strings.Split(token.Raw, ".")
	claimBytes, err := jwt.DecodeSegment(parts[1])
	if err != nil {
		return reject(causeMalformed, fmt.Errorf("Failed to decode claims: %v", err))
	}
	var sdkClaims claims
	if err := json.Unmarshal(claimBytes, &sdkClaims); err != nil {
		return reject(decodeCause(err), fmt.Errorf("Unable to get sdkclaims: %v", err))
	}
	if err := validateUsername(a.usernameClaim, &sdkClaims); err != nil {
		return reject(causeUsername, err)
	}
	return accepted("self-signed", issuer, a.usernameClaim, &sdkClaims)
}

// -- OIDC: pkg/auth/oidc.go over go-oidc ----------------------------------------------------------------

// jwksTransport answers every request with the key set, as a provider's jwks_uri would.
type jwksTransport struct{ body []byte }

func (t jwksTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": []string{"application/json"}},
		Body:    io.NopCloser(bytes.NewReader(t.body)),
		Request: req,
	}, nil
}

// supportedAlgorithms is go-oidc's list (oidc.go): a provider's other algorithms are dropped, and an
// empty result makes the verifier fall back to RS256.
var supportedAlgorithms = map[string]bool{
	oidc.RS256: true, oidc.RS384: true, oidc.RS512: true,
	oidc.ES256: true, oidc.ES384: true, oidc.ES512: true,
	oidc.PS256: true, oidc.PS384: true, oidc.PS512: true,
}

func oidcCause(err error) string {
	text := err.Error()
	switch {
	case strings.HasPrefix(text, "oidc: malformed jwt"), strings.HasPrefix(text, "oidc: id token not signed"),
		strings.HasPrefix(text, "oidc: multiple signatures"):
		return causeMalformed
	case strings.HasPrefix(text, "oidc: failed to unmarshal claims"),
		strings.HasPrefix(text, "oidc: failed to obtain source"), strings.HasPrefix(text, "oidc: source does not exist"):
		return causeClaims
	case strings.HasPrefix(text, "oidc: id token issued by a different provider"):
		return causeUntrustedIssuer
	case strings.HasPrefix(text, "oidc: expected audience"):
		return causeAudience
	case strings.HasPrefix(text, "oidc: invalid configuration"):
		return causeConfig
	case strings.HasPrefix(text, "oidc: token is expired"):
		return causeExp
	case strings.Contains(text, "before the nbf"):
		return causeNbf
	case strings.HasPrefix(text, "oidc: id token signed with unsupported algorithm"):
		return causeAlg
	case strings.Contains(text, "fetching keys"):
		return causeJWKS
	case strings.HasPrefix(text, "failed to verify signature"):
		return causeSignature
	}
	return causeMalformed
}

func authenticateOIDC(raw string, cfg *oidcConfig, usernameClaim string, now time.Time) result {
	ctx := oidc.ClientContext(context.Background(), &http.Client{Transport: jwksTransport{body: cfg.JWKS}})
	var algs []string
	for _, a := range cfg.Algorithms {
		if supportedAlgorithms[a] {
			algs = append(algs, a)
		}
	}
	keySet := oidc.NewRemoteKeySet(ctx, "https://provider.invalid/jwks")
	verifier := oidc.NewVerifier(cfg.Issuer, keySet, &oidc.Config{
		ClientID: cfg.ClientID, SupportedSigningAlgs: algs, Now: func() time.Time { return now },
	})
	idToken, err := verifier.Verify(ctx, raw)
	if err != nil {
		return reject(oidcCause(err), fmt.Errorf("Token failed validation: %v", err))
	}
	var m map[string]interface{}
	if err := idToken.Claims(&m); err != nil {
		return reject(causeClaims, fmt.Errorf("Unable to get claim map from token: %v", err))
	}
	for _, name := range requiredClaims {
		if _, ok := m[name]; !ok {
			return reject(causeRequiredClaim, fmt.Errorf("Required claim %v missing from token", name))
		}
	}
	if cfg.Namespace != "" {
		for _, cc := range []string{"roles", "groups"} {
			if v, ok := m[cfg.Namespace+cc]; ok {
				m[cc] = v
			}
		}
	}
	encoded, err := json.Marshal(m)
	if err != nil {
		return reject(causeClaims, fmt.Errorf("Internal error, unable to re-encode OIDC token claims: %v", err))
	}
	var sdkClaims claims
	if err := json.Unmarshal(encoded, &sdkClaims); err != nil {
		return reject(causeClaims, fmt.Errorf("Unable to get claims from token: %v", err))
	}
	if err := validateUsername(usernameClaim, &sdkClaims); err != nil {
		return reject(causeUsername, err)
	}
	return accepted("oidc", cfg.Issuer, usernameClaim, &sdkClaims)
}

// -- one case ------------------------------------------------------------------------------------------

func judge(tc testCase) (out result) {
	defer func() {
		if r := recover(); r != nil {
			out = result{Cause: causeMalformed, Error: fmt.Sprintf("panic: %v", r)}
		}
	}()
	now := time.Unix(tc.NowUnix, tc.NowNanos)
	jwt.TimeFunc = func() time.Time { return now }

	issuer, cause, err := routeIssuer(tc.Token)
	if err != nil {
		return reject(cause, err)
	}
	for _, cfg := range tc.SelfSigned {
		if cfg.Issuer != issuer {
			continue
		}
		auth, err := newJwtAuth(cfg, tc.UsernameClaim)
		if err != nil {
			return reject(causeConfig, err)
		}
		return auth.authenticate(tc.Token, issuer)
	}
	if tc.OIDC != nil && tc.OIDC.Issuer == issuer {
		return authenticateOIDC(tc.Token, tc.OIDC, tc.UsernameClaim, now)
	}
	return reject(causeUntrustedIssuer, errors.New("Token issuer not known"))
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "node" {
		os.Exit(runNode(os.Args[2:]))
	}
	var input struct {
		Cases []testCase `json:"cases"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&input); err != nil {
		fmt.Fprintf(os.Stderr, "pxsec-interop: cannot read the cases: %v\n", err)
		os.Exit(2)
	}
	results := make([]result, 0, len(input.Cases))
	for _, tc := range input.Cases {
		r := judge(tc)
		r.ID = tc.ID
		results = append(results, r)
	}
	encoder := json.NewEncoder(os.Stdout)
	if err := encoder.Encode(map[string]interface{}{"results": results}); err != nil {
		fmt.Fprintf(os.Stderr, "pxsec-interop: cannot write the results: %v\n", err)
		os.Exit(2)
	}
}
