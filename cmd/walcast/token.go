package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// token prints an HS256 token shaped like GraceGiver's, for development.
func token(args, env []string, stdout, stderr io.Writer) error {
	secretDefault := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "JWT_SECRET="); ok {
			secretDefault = v
		}
	}
	fs := flag.NewFlagSet("walcast token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("secret", secretDefault, "HS256 secret [$JWT_SECRET]")
	id := fs.String("id", "1", "user id claim (a number stays a number)")
	username := fs.String("username", "admin", "username claim")
	role := fs.String("role", "super_admin", "role claim")
	member := fs.String("member-id", "", "memberId claim (empty: null)")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *secret == "" {
		return errors.New("--secret (JWT_SECRET) is required")
	}
	s, err := signToken([]byte(*secret), *id, *username, *role, *member, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, s)
	return nil
}

func signToken(secret []byte, id, username, role, memberID string, ttl time.Duration) (string, error) {
	now := time.Now()
	claims := jwt.MapClaims{"username": username, "role": role, "memberId": nil, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		claims["id"] = n
	} else {
		claims["id"] = id
	}
	if memberID != "" {
		claims["memberId"] = memberID
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}
