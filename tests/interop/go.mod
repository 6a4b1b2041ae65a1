module pxsec.dev/interop

go 1.26.0

require (
	github.com/coreos/go-oidc v2.2.1+incompatible
	github.com/golang-jwt/jwt/v4 v4.3.0
)

require (
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/pquerna/cachecontrol v0.2.0 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/oauth2 v0.38.0 // indirect
	gopkg.in/square/go-jose.v2 v2.6.0 // indirect
)
