// Package auth verifies the JSON Web Tokens browsers present at connect and
// turns them into the identity walcast routes and locks by.
//
// Every failure maps onto one of the two messages the client contract names,
// so existing browser code that matches on them keeps working; the precise
// cause is kept in the wrapped error for logs.
package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The messages socket.io-client shows in connect_error (contract:
// "Authentication error: No token provided" / "...: Invalid token").
const (
	MsgNoToken      = "Authentication error: No token provided"
	MsgInvalidToken = "Authentication error: Invalid token"
)

// contractError is an error whose text clients match on, capitals included.
type contractError string

func (e contractError) Error() string { return string(e) }

var (
	// ErrNoToken: the handshake carried no token or an empty one.
	ErrNoToken error = contractError(MsgNoToken)
	// ErrInvalidToken: anything else wrong with the token. Errors returned
	// by Verify wrap it together with the cause.
	ErrInvalidToken error = contractError(MsgInvalidToken)
)

// Identity is who a verified token speaks for.
type Identity struct {
	// ID is the user id as the token carries it (claim `id`, else `sub`),
	// kept as its JSON token so a numeric id stays a number in lock values.
	ID json.RawMessage
	// IDString is ID as plain text: "1" for 1, "abc" for "abc". Rooms and
	// lock ownership compare on it.
	IDString  string
	Username  string
	Role      string
	MemberID  string    // empty when the token has none (memberId null)
	ExpiresAt time.Time // zero when the token has no exp
}

// Config selects how tokens are checked. Exactly one algorithm is accepted.
type Config struct {
	// Algorithm is "HS256" (default), "RS256" or "ES256".
	Algorithm string
	// Secret is the HMAC key for HS256.
	Secret []byte
	// PublicKeyPEM is the PEM public key for RS256/ES256.
	PublicKeyPEM []byte
	// Leeway tolerates clock skew on nbf and iat (a token minted a moment
	// ago by a server whose clock is ahead). Default 30s. It does not apply
	// to exp: a token already expired by this process's clock is refused,
	// as a socket whose token expires is cut at that instant; granting a
	// handshake a leeway the socket would lose at once only made clients
	// connect and be cut.
	Leeway time.Duration
}

// Verifier checks tokens against one Config. Safe for concurrent use.
type Verifier struct {
	alg    string
	key    crypto.PublicKey // or []byte for HMAC
	parser *jwt.Parser
}

// NewVerifier validates cfg and returns a Verifier.
func NewVerifier(cfg Config) (*Verifier, error) {
	alg := cfg.Algorithm
	if alg == "" {
		alg = "HS256"
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	v := &Verifier{alg: alg}
	switch alg {
	case "HS256":
		if len(cfg.Secret) == 0 {
			return nil, errors.New("jwt: HS256 needs a secret (JWT_SECRET)")
		}
		v.key = cfg.Secret
	case "RS256":
		k, err := jwt.ParseRSAPublicKeyFromPEM(cfg.PublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("jwt: RS256 public key: %w", err)
		}
		v.key = k
	case "ES256":
		k, err := jwt.ParseECPublicKeyFromPEM(cfg.PublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("jwt: ES256 public key: %w", err)
		}
		v.key = k
	default:
		return nil, fmt.Errorf("jwt: algorithm %q not supported (HS256, RS256, ES256)", alg)
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{alg}),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithJSONNumber(),
	)
	return v, nil
}

// Algorithm reports the one algorithm this verifier accepts.
func (v *Verifier) Algorithm() string { return v.alg }

// Verify checks a raw token and returns its identity. The error is ErrNoToken
// or wraps ErrInvalidToken.
func (v *Verifier) Verify(raw string) (*Identity, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, ErrNoToken
	}
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		switch v.key.(type) {
		case []byte, *rsa.PublicKey, *ecdsa.PublicKey:
			return v.key, nil
		}
		return nil, errors.New("no key")
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	id, err := identityFrom(claims)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if !id.ExpiresAt.IsZero() && !time.Now().Before(id.ExpiresAt) {
		return nil, fmt.Errorf("%w: %w at %s", ErrInvalidToken, errExpired, id.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return id, nil
}

// FromHandshake picks the token from the Socket.IO auth payload
// ({token: "..."}), falling back to an "Authorization: Bearer" header for
// non-browser clients. As in the original server, a token that JavaScript
// counts as false (missing, null, false, 0, "") is no token; any other
// non-string (42, {}) is returned as its JSON text, so it fails
// verification as an invalid token.
func FromHandshake(auth json.RawMessage, authorization string) string {
	if len(bytes.TrimSpace(auth)) > 0 {
		var a struct {
			Token json.RawMessage `json:"token"`
		}
		if json.Unmarshal(auth, &a) == nil && len(a.Token) > 0 {
			var s string
			if json.Unmarshal(a.Token, &s) == nil {
				if s != "" {
					return s
				}
			} else if !jsFalsy(a.Token) {
				return string(a.Token)
			}
		}
	}
	if rest, ok := strings.CutPrefix(authorization, "Bearer "); ok {
		return strings.TrimSpace(rest)
	}
	return ""
}

// jsFalsy reports whether a non-string JSON value is false in JavaScript.
func jsFalsy(v json.RawMessage) bool {
	switch t := string(bytes.TrimSpace(v)); t {
	case "null", "false":
		return true
	default:
		var f float64
		return json.Unmarshal(v, &f) == nil && f == 0
	}
}

func identityFrom(c jwt.MapClaims) (*Identity, error) {
	raw, ok := c["id"]
	if !ok || raw == nil {
		raw, ok = c["sub"]
	}
	if !ok || raw == nil {
		return nil, errors.New("token has neither id nor sub")
	}
	var idJSON json.RawMessage
	var idStr string
	switch x := raw.(type) {
	case json.Number:
		if _, err := strconv.ParseInt(string(x), 10, 64); err != nil {
			return nil, fmt.Errorf("id %q is not an integer", x)
		}
		idStr, idJSON = string(x), json.RawMessage(x)
	case string:
		if x == "" {
			return nil, errors.New("empty id")
		}
		b, _ := json.Marshal(x)
		idStr, idJSON = x, b
	default:
		return nil, fmt.Errorf("id has type %T", raw)
	}
	id := &Identity{ID: idJSON, IDString: idStr}
	var err error
	if id.Username, err = optString(c, "username"); err != nil {
		return nil, err
	}
	if id.Role, err = optString(c, "role"); err != nil {
		return nil, err
	}
	switch m := c["memberId"].(type) {
	case nil:
	case string:
		id.MemberID = m
	case json.Number:
		id.MemberID = string(m)
	default:
		return nil, fmt.Errorf("memberId has type %T", m)
	}
	if exp, err := c.GetExpirationTime(); err == nil && exp != nil {
		id.ExpiresAt = exp.Time
	}
	return id, nil
}

func optString(c jwt.MapClaims, name string) (string, error) {
	switch x := c[name].(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	default:
		return "", fmt.Errorf("claim %s has type %T", name, x)
	}
}
