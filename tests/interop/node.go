// Node mode: a stand-in for one Portworx node's authentication, for the rotation tests (issue 20).
//
//	pxsec-interop node --listen 127.0.0.2:9021 --root /tmp/pod-dir --name node-1
//
// What it shares with Portworx, and why it is enough to test key rotation:
//
//   - Keys are read once, at start, from the environment and from files, as Portworx reads them
//     (portworx-facts: PORTWORX_AUTH_JWT_ISSUER, PORTWORX_AUTH_JWT_SHAREDSECRET, PORTWORX_AUTH_SYSTEM_APPS_KEY
//     in the environment; PORTWORX_AUTH_JWT_RSA_PUBKEY / PORTWORX_AUTH_JWT_ECDS_PUBKEY are file paths;
//     OpenStorage cmd/osd selfSignedAuth reads the files once with ioutil.ReadFile). Files are read under
//     --root: the directory the Portworx Operator stand-in fills with the pod's Secret volumes, as the
//     kubelet fills a container's mounts. A Secret changed later is never seen, exactly as on a node.
//   - A key file that cannot be read or parsed stops the node at start (exit 1), as Portworx cannot start
//     its authenticator.
//   - Tokens are judged by the same code as the differential checker (main.go: jwtAuthenticator over
//     golang-jwt v4.3.0, one authenticator per exact issuer; apps.portworx.io with the apps key).
//   - It serves the SDK REST gateway's GET /v1/identities/version (OpenStorage api/api.proto): 200 for a
//     token it accepts; 403 otherwise, as grpc-gateway maps PermissionDenied ("Unable to authenticate
//     token", "<iss> is not a trusted issuer", "Access denied without authentication token").
//
// Not modelled: authorization by role (every authenticated token may call this route; system.view may,
// which is what the canary uses), OIDC (a rotation never touches it), TLS on the API port.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	jwt "github.com/golang-jwt/jwt/v4"
)

const appsIssuer = "apps.portworx.io"

func short(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}

func readKeyFile(root, env string) (string, error) {
	path := os.Getenv(env)
	if path == "" {
		return "", nil
	}
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		return "", fmt.Errorf("%s=%s: %v", env, path, err)
	}
	return string(data), nil
}

func answer(w http.ResponseWriter, code int, body interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

func denied(w http.ResponseWriter, message string) {
	answer(w, http.StatusForbidden, map[string]interface{}{"code": 7, "message": message, "error": message})
}

func runNode(args []string) int {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9021", "address of the SDK REST gateway")
	root := fs.String("root", "/", "directory the node's file paths are read under (its mounts)")
	name := fs.String("name", "node", "the node's name, for its log")
	tlsCert := fs.String("tls-cert", "", "serve over TLS with this certificate (PEM), as Portworx with PX_ENABLE_TLS")
	tlsKey := fs.String("tls-key", "", "the private key of --tls-cert (PEM)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	jwt.TimeFunc = time.Now
	usernameClaim := os.Getenv("PORTWORX_AUTH_USERNAME_CLAIM")
	if usernameClaim == "" {
		usernameClaim = "sub"
	}
	cfg := selfSignedConfig{
		Issuer:       os.Getenv("PORTWORX_AUTH_JWT_ISSUER"),
		SharedSecret: []byte(os.Getenv("PORTWORX_AUTH_JWT_SHAREDSECRET")),
	}
	var err error
	if cfg.RSAPublicPEM, err = readKeyFile(*root, "PORTWORX_AUTH_JWT_RSA_PUBKEY"); err != nil {
		fmt.Fprintf(os.Stderr, "node %s: cannot start: %v\n", *name, err)
		return 1
	}
	if cfg.ECDSAPublicPEM, err = readKeyFile(*root, "PORTWORX_AUTH_JWT_ECDS_PUBKEY"); err != nil {
		fmt.Fprintf(os.Stderr, "node %s: cannot start: %v\n", *name, err)
		return 1
	}
	authenticators := map[string]*jwtAuthenticator{}
	if cfg.Issuer != "" {
		a, err := newJwtAuth(cfg, usernameClaim)
		if err != nil {
			fmt.Fprintf(os.Stderr, "node %s: cannot start: %v\n", *name, err)
			return 1
		}
		authenticators[cfg.Issuer] = a
	}
	if apps := os.Getenv("PORTWORX_AUTH_SYSTEM_APPS_KEY"); apps != "" {
		a, err := newJwtAuth(selfSignedConfig{Issuer: appsIssuer, SharedSecret: []byte(apps)}, usernameClaim)
		if err == nil {
			authenticators[appsIssuer] = a
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/v1/identities/version", func(w http.ResponseWriter, r *http.Request) {
		header := r.Header.Get("Authorization")
		if header == "" {
			denied(w, "Access denied without authentication token")
			return
		}
		fields := strings.Fields(header)
		if len(fields) != 2 || !strings.EqualFold(fields[0], "bearer") {
			denied(w, "Unable to authenticate token")
			return
		}
		raw := fields[1]
		issuer, _, err := routeIssuer(raw)
		if err != nil {
			denied(w, "Unable to authenticate token")
			return
		}
		a, ok := authenticators[issuer]
		if !ok {
			denied(w, fmt.Sprintf("%s is not a trusted issuer", issuer))
			return
		}
		if res := a.authenticate(raw, issuer); !res.Accepted {
			denied(w, "Unable to authenticate token")
			return
		}
		answer(w, http.StatusOK, map[string]interface{}{
			"sdk_version": map[string]interface{}{"major": 0, "minor": 101, "patch": 0},
			"version":     map[string]interface{}{"name": "pxsec node stand-in", "version": *name},
		})
	})
	server := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	// One line a test can wait for, naming what this node loaded (digests, never values).
	fmt.Printf("node %s listening on %s (tls %v); issuer %q hs %s rs %s es %s apps %s\n", *name, *listen,
		*tlsCert != "", cfg.Issuer, short(cfg.SharedSecret), short([]byte(cfg.RSAPublicPEM)),
		short([]byte(cfg.ECDSAPublicPEM)), short([]byte(os.Getenv("PORTWORX_AUTH_SYSTEM_APPS_KEY"))))
	if *tlsCert != "" {
		err = server.ListenAndServeTLS(*tlsCert, *tlsKey)
	} else {
		err = server.ListenAndServe()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "node %s: %v\n", *name, err)
		return 1
	}
	return 0
}
