package adminui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Refusals the UI shows; "invalid credentials" is the text it recognises
// to reopen its login form.
var (
	errInvalidCredentials = errors.New("invalid credentials")
	errBusy               = errors.New("too many login attempts, try again shortly")
)

const (
	// maxSessions bounds the logins remembered; the oldest goes first.
	maxSessions = 1024
	// loginWait is how long a login waits for a bcrypt comparison slot
	// before it is refused: each comparison costs tens of milliseconds of
	// CPU, and logins are attempted by anyone who can reach the port.
	loginWait = 2 * time.Second
)

// authenticator checks the UI's basic auth and remembers the session ids it
// handed out, as the Admin UI's InMemoryStore does (with an expiry and a
// bound, which that store lacks).
type authenticator struct {
	username []byte
	hash     []byte
	ttl      time.Duration
	// slot admits one bcrypt comparison at a time.
	slot chan struct{}

	mu       sync.Mutex
	sessions map[string]time.Time // id -> expiry
}

func newAuthenticator(username, hash string, ttl time.Duration) *authenticator {
	return &authenticator{
		username: []byte(username),
		hash:     []byte(hash),
		ttl:      ttl,
		slot:     make(chan struct{}, 1),
		sessions: make(map[string]time.Time),
	}
}

// login accepts a live session id, or the username and password; for the
// latter it returns the new session id to give the UI.
func (a *authenticator) login(sessionID, username, password string) (string, error) {
	if sessionID != "" && a.valid(sessionID) {
		return "", nil
	}
	if username == "" && password == "" {
		return "", errInvalidCredentials
	}
	select {
	case a.slot <- struct{}{}:
	case <-time.After(loginWait):
		return "", errBusy
	}
	// The hash is compared whatever the username, so the time taken does
	// not tell whether the username was right.
	pwErr := bcrypt.CompareHashAndPassword(a.hash, []byte(password))
	<-a.slot
	userOK := subtle.ConstantTimeCompare(a.username, []byte(username)) == 1
	if pwErr != nil || !userOK {
		return "", errInvalidCredentials
	}
	return a.newSession(), nil
}

func (a *authenticator) valid(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.sessions[id]
	if ok && time.Now().After(exp) {
		delete(a.sessions, id)
		return false
	}
	return ok
}

func (a *authenticator) newSession() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	id := hex.EncodeToString(b[:])
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.sessions) >= maxSessions {
		oldest, oldestExp := "", time.Time{}
		for k, exp := range a.sessions {
			if now.After(exp) {
				delete(a.sessions, k)
				continue
			}
			if oldest == "" || exp.Before(oldestExp) {
				oldest, oldestExp = k, exp
			}
		}
		if len(a.sessions) >= maxSessions {
			delete(a.sessions, oldest)
		}
	}
	a.sessions[id] = now.Add(a.ttl)
	return id
}
