package auth

import (
	"errors"

	"github.com/golang-jwt/jwt/v5"
)

// Why Verify refused a token (FailureReason), a short fixed list for
// counting; the client is told only the contract's two messages.
const (
	ReasonNoToken      = "no_token"
	ReasonExpired      = "expired"
	ReasonNotYetValid  = "not_yet_valid"
	ReasonBadSignature = "bad_signature" // or another algorithm than the accepted one
	ReasonMalformed    = "malformed"
	ReasonClaims       = "claims" // signed and current, but without a usable id, role or member id
)

// errExpired: a token that the JWT library's leeway let through has
// expired by this process's clock.
var errExpired = errors.New("token expired")

// FailureReason says why Verify returned err.
func FailureReason(err error) string {
	switch {
	case errors.Is(err, ErrNoToken):
		return ReasonNoToken
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, errExpired):
		return ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ReasonNotYetValid
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return ReasonBadSignature
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonMalformed
	}
	return ReasonClaims
}
