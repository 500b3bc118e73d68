package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("test-secret")

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func graceClaims(exp time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"id": 7, "username": "alice", "role": "admin", "memberId": nil,
		"iat": now.Unix(), "exp": now.Add(exp).Unix()}
}

func TestVerifyHS256(t *testing.T) {
	v, err := NewVerifier(Config{Secret: secret, Leeway: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	noneToken := func() string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		p := base64.RawURLEncoding.EncodeToString([]byte(`{"id":1,"username":"x","role":"super_admin"}`))
		return h + "." + p + "."
	}()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	cases := []struct {
		name    string
		token   string
		wantErr error
	}{
		{"valid", sign(t, jwt.SigningMethodHS256, secret, graceClaims(time.Hour)), nil},
		{"empty", "", ErrNoToken},
		{"blank", "   ", ErrNoToken},
		{"garbage", "not.a.token", ErrInvalidToken},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("other"), graceClaims(time.Hour)), ErrInvalidToken},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, graceClaims(-time.Minute)), ErrInvalidToken},
		{"expired less than the leeway ago", sign(t, jwt.SigningMethodHS256, secret, graceClaims(-2*time.Second)), ErrInvalidToken},
		{"alg none", noneToken, ErrInvalidToken},
		{"HS512 with the same secret", sign(t, jwt.SigningMethodHS512, secret, graceClaims(time.Hour)), ErrInvalidToken},
		{"RS256 when HS256 configured", sign(t, jwt.SigningMethodRS256, rsaKey, graceClaims(time.Hour)), ErrInvalidToken},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"id": 1, "nbf": time.Now().Add(time.Hour).Unix()}), ErrInvalidToken},
		{"no id nor sub", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"username": "x"}), ErrInvalidToken},
		{"id of wrong type", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"id": []int{1}}), ErrInvalidToken},
		{"fractional id", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"id": 1.5}), ErrInvalidToken},
		{"role of wrong type", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"id": 1, "role": 3}), ErrInvalidToken},
	}
	// Why each refusal is counted (FailureReason).
	reasons := map[string]string{
		"empty": ReasonNoToken, "blank": ReasonNoToken, "garbage": ReasonMalformed,
		"wrong secret": ReasonBadSignature, "expired": ReasonExpired, "expired less than the leeway ago": ReasonExpired, "alg none": ReasonBadSignature,
		"HS512 with the same secret": ReasonBadSignature, "RS256 when HS256 configured": ReasonBadSignature,
		"not yet valid": ReasonNotYetValid, "no id nor sub": ReasonClaims, "id of wrong type": ReasonClaims,
		"fractional id": ReasonClaims, "role of wrong type": ReasonClaims,
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(tc.token)
			if err != nil {
				if got := FailureReason(err); got != reasons[tc.name] {
					t.Errorf("FailureReason(%v) = %q, want %q", err, got, reasons[tc.name])
				}
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if string(id.ID) != "7" || id.IDString != "7" || id.Username != "alice" || id.Role != "admin" || id.MemberID != "" {
					t.Fatalf("identity = %+v", id)
				}
				if id.ExpiresAt.IsZero() {
					t.Fatal("ExpiresAt not set")
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestErrorMessagesMatchContract(t *testing.T) {
	v, _ := NewVerifier(Config{Secret: secret})
	_, err := v.Verify("")
	if err.Error() != "Authentication error: No token provided" {
		t.Fatalf("no token message = %q", err)
	}
	_, err = v.Verify("x")
	if !errors.Is(err, ErrInvalidToken) || ErrInvalidToken.Error() != "Authentication error: Invalid token" {
		t.Fatalf("invalid token: %v", err)
	}
}

// TestLeewayAcceptsSmallSkew: a token minted by a server whose clock is
// ahead (nbf and iat a little in the future) is accepted within the
// leeway; expiry is not stretched by it (TestVerifyHS256's "expired less
// than the leeway ago"): a socket is cut when its token expires, so a
// handshake the leeway let through would be cut at once.
func TestLeewayAcceptsSmallSkew(t *testing.T) {
	v, _ := NewVerifier(Config{Secret: secret, Leeway: time.Minute})
	ahead := time.Now().Add(10 * time.Second)
	claims := jwt.MapClaims{"id": 7, "iat": ahead.Unix(), "nbf": ahead.Unix(), "exp": ahead.Add(time.Hour).Unix()}
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret, claims)); err != nil {
		t.Fatalf("token minted 10s in the future, within a 1m leeway: %v", err)
	}
}

func TestSubAndStringIDs(t *testing.T) {
	v, _ := NewVerifier(Config{Secret: secret})
	id, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u-1", "memberId": "m-9"}))
	if err != nil {
		t.Fatal(err)
	}
	if string(id.ID) != `"u-1"` || id.IDString != "u-1" || id.MemberID != "m-9" || !id.ExpiresAt.IsZero() {
		t.Fatalf("identity = %+v", id)
	}
}

func TestPublicKeyAlgorithms(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pemOf := func(pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	cases := []struct {
		alg    string
		method jwt.SigningMethod
		priv   any
		pub    []byte
	}{
		{"RS256", jwt.SigningMethodRS256, rsaKey, pemOf(&rsaKey.PublicKey)},
		{"ES256", jwt.SigningMethodES256, ecKey, pemOf(&ecKey.PublicKey)},
	}
	for _, tc := range cases {
		t.Run(tc.alg, func(t *testing.T) {
			v, err := NewVerifier(Config{Algorithm: tc.alg, PublicKeyPEM: tc.pub})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(sign(t, tc.method, tc.priv, graceClaims(time.Hour))); err != nil {
				t.Fatalf("valid %s token: %v", tc.alg, err)
			}
			// The HMAC-with-public-key confusion: sign HS256 using the PEM bytes as the secret.
			if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, tc.pub, graceClaims(time.Hour))); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("HS256 signed with the public key accepted: %v", err)
			}
		})
	}
}

func TestNewVerifierRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{{}, {Algorithm: "RS256", PublicKeyPEM: []byte("nope")}, {Algorithm: "none", Secret: secret}} {
		if _, err := NewVerifier(cfg); err == nil {
			t.Errorf("NewVerifier(%+v) accepted", cfg)
		}
	}
}

func TestFromHandshake(t *testing.T) {
	cases := []struct {
		auth, header, want string
	}{
		{`{"token":"abc"}`, "", "abc"},
		{`{"token":""}`, "Bearer hdr", "hdr"},
		{`{"token":5}`, "", "5"},
		{`{"token":0}`, "", ""},
		{`{"token":false}`, "", ""},
		{`{"token":null}`, "Bearer h", "h"},
		{`{"token":{"a":1}}`, "", `{"a":1}`},
		{``, "Bearer  xyz ", "xyz"},
		{`null`, "Basic foo", ""},
		{`[1]`, "", ""},
	}
	for _, tc := range cases {
		if got := FromHandshake([]byte(tc.auth), tc.header); got != tc.want {
			t.Errorf("FromHandshake(%q, %q) = %q, want %q", tc.auth, tc.header, got, tc.want)
		}
	}
}

// TestIDNormalised: the id is normalised once, here: a number and a
// string with its digits are one user, and a number above 2^53 keeps its
// digits (a float would round 9007199254740993 to ...992).
func TestIDNormalised(t *testing.T) {
	v, _ := NewVerifier(Config{Secret: secret})
	for _, tc := range []struct {
		claim any
		want  string
	}{
		{1, "1"},
		{"1", "1"},
		{json.Number("9007199254740993"), "9007199254740993"},
		{"9007199254740993", "9007199254740993"},
		{"u-7", "u-7"},
	} {
		tok := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"id": tc.claim})
		id, err := v.Verify(tok)
		if err != nil {
			t.Errorf("id %#v: %v", tc.claim, err)
		} else if id.IDString != tc.want {
			t.Errorf("id %#v: IDString %q, want %q", tc.claim, id.IDString, tc.want)
		}
	}
}
