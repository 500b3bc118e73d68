package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/pgtest"
)

const (
	msgNoToken      = "Authentication error: No token provided"
	msgInvalidToken = "Authentication error: Invalid token"
)

// TestAuthRefusals: every bad handshake gets the contract's exact message.
func TestAuthRefusals(t *testing.T) {
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := gracegiverClaims(1, "admin", "super_admin", nil, time.Hour)
	ensureUsers(t, in, signClaims(t, jwt.SigningMethodHS256, []byte(testSecret), good))
	expired := gracegiverClaims(1, "admin", "super_admin", nil, -time.Hour)
	// Expired by walcast's clock, though within the verifier's leeway: a
	// handshake must not succeed only to be cut at once.
	justExpired := gracegiverClaims(1, "admin", "super_admin", nil, -2*time.Second)
	// A token for a user the users table does not have.
	noUser := gracegiverClaims(77, "ghost", "super_admin", nil, time.Hour)
	notYet := gracegiverClaims(1, "admin", "super_admin", nil, 2*time.Hour)
	notYet["nbf"] = time.Now().Add(time.Hour).Unix()
	noID := gracegiverClaims(nil, "admin", "super_admin", nil, time.Hour)
	delete(noID, "id")

	cases := []struct {
		name string
		auth any
		want string
	}{
		{"no auth at all", nil, msgNoToken},
		{"auth without token", map[string]any{}, msgNoToken},
		{"empty token", authOf(""), msgNoToken},
		{"garbage", authOf("not-a-jwt"), msgInvalidToken},
		{"three garbage parts", authOf("aaa.bbb.ccc"), msgInvalidToken},
		{"wrong secret", authOf(signClaims(t, jwt.SigningMethodHS256, []byte("another secret"), good)), msgInvalidToken},
		{"expired", authOf(signClaims(t, jwt.SigningMethodHS256, []byte(testSecret), expired)), msgInvalidToken},
		{"expired 2 s ago, within the leeway", authOf(signClaims(t, jwt.SigningMethodHS256, []byte(testSecret), justExpired)), msgInvalidToken},
		{"no such user", authOf(signClaims(t, jwt.SigningMethodHS256, []byte(testSecret), noUser)), msgInvalidToken},
		{"not yet valid", authOf(signClaims(t, jwt.SigningMethodHS256, []byte(testSecret), notYet)), msgInvalidToken},
		{"alg none", authOf(signClaims(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)), msgInvalidToken},
		{"HS384 with the right secret", authOf(signClaims(t, jwt.SigningMethodHS384, []byte(testSecret), good)), msgInvalidToken},
		{"HS512 with the right secret", authOf(signClaims(t, jwt.SigningMethodHS512, []byte(testSecret), good)), msgInvalidToken},
		{"RS256", authOf(signClaims(t, jwt.SigningMethodRS256, rsaKey, good)), msgInvalidToken},
		{"ES256", authOf(signClaims(t, jwt.SigningMethodES256, ecKey, good)), msgInvalidToken},
		{"no id claim", authOf(signClaims(t, jwt.SigningMethodHS256, []byte(testSecret), noID)), msgInvalidToken},
		{"valid (control)", authOf(signClaims(t, jwt.SigningMethodHS256, []byte(testSecret), good)), ""},
	}
	auths := make([]any, len(cases))
	for i, tc := range cases {
		auths[i] = tc.auth
	}
	// auths[i] == nil falls back to cfg.Auth (nil): no auth object at all.
	c := sioclient.Start(t, in.URL, sioclient.ClientConfig{Count: len(cases), Auths: auths})
	for i, tc := range cases {
		l := c.WaitFor(10*time.Second, func(l sioclient.Line) bool {
			return l.Client == i && (l.Kind == "connect" || l.Kind == "connect_error")
		})
		switch {
		case tc.want == "" && l.Kind != "connect":
			t.Errorf("%s: refused: %s", tc.name, l.Raw)
		case tc.want != "" && (l.Kind != "connect_error" || l.Message != tc.want):
			t.Errorf("%s: got %s, want connect_error %q", tc.name, l.Raw, tc.want)
		}
	}
}

// TestAuthorizationHeader: non-browser clients may send the token as a
// Bearer header instead of auth.token.
func TestAuthorizationHeader(t *testing.T) {
	dsn := newDB(t)
	tok := mint(t, 9001, "adm", "admin", nil, time.Hour)
	addUsers(t, dsn, tok)
	in := startWalcast(t, dsn, serveOpts{})
	c := sioclient.Start(t, in.URL, sioclient.ClientConfig{
		Transports:   []string{"websocket"},
		ExtraHeaders: map[string]string{"Authorization": "Bearer " + tok},
	})
	if l := c.WaitFor(10*time.Second, func(l sioclient.Line) bool { return l.Kind == "connect" || l.Kind == "connect_error" }); l.Kind != "connect" {
		t.Fatalf("Bearer header refused: %s", l.Raw)
	}
	pgtest.Exec(t, dsn, `INSERT INTO members (id, first_name, last_name) VALUES ('m-h', 'H', 'H')`)
	waitEvents(t, c, 0, "member:update", 1, 10*time.Second)
}

// TestTokenExpiry: a socket hears auth:expiring before its token expires and
// its connection is closed at expiry; the official client reconnects by
// itself and hears connect_error "Authentication error: Invalid token", the
// contract's re-login case.
func TestTokenExpiry(t *testing.T) {
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{args: []string{"--token-expiry-warning", "1s"}})
	// JWT exp has whole seconds: this token expires 3-4s from now.
	exp := time.Now().Add(4 * time.Second).Truncate(time.Second)
	claims := gracegiverClaims(9001, "adm", "admin", nil, time.Hour)
	claims["exp"] = exp.Unix()
	c := connectWith(t, in, sioclient.ClientConfig{Reconnection: true},
		signClaims(t, jwt.SigningMethodHS256, []byte(testSecret), claims), mint(t, 9002, "long", "admin", nil, time.Hour))

	warn := c.WaitFor(10*time.Second, func(l sioclient.Line) bool { return l.Kind == "event" && l.Client == 0 && l.Event == "auth:expiring" })
	var p struct {
		ExpiresAt string `json:"expiresAt"`
	}
	if err := warn.Arg(0, &p); err != nil {
		t.Fatalf("auth:expiring payload %s: %v", joinRaw(warn.Args), err)
	}
	if at, err := time.Parse(time.RFC3339, p.ExpiresAt); err != nil || !at.Equal(exp) {
		t.Errorf("auth:expiring expiresAt = %q, want %s", p.ExpiresAt, exp.UTC().Format(time.RFC3339))
	}
	waitCutToInvalidToken(t, c, 0, 10*time.Second)
	// The order matters to the app: warning first, then the cut.
	var order []string
	for _, l := range c.Lines() {
		if l.Client == 0 && (l.Kind == "disconnect" || l.Event == "auth:expiring") {
			order = append(order, l.Kind+":"+l.Event)
		}
	}
	if b, _ := json.Marshal(order); string(b) != `["event:auth:expiring","disconnect:"]` {
		t.Errorf("socket 0 saw %s, want the warning then the disconnect", b)
	}
	// The long-lived token's socket stays and still gets events.
	pgtest.Exec(t, dsn, `INSERT INTO members (id, first_name, last_name) VALUES ('m-x', 'X', 'X')`)
	waitEvents(t, c, 1, "member:update", 1, 10*time.Second)
	if n := c.Count(func(l sioclient.Line) bool { return l.Kind == "disconnect" && l.Client == 1 }); n != 0 {
		t.Errorf("socket with a valid token was disconnected")
	}
}
