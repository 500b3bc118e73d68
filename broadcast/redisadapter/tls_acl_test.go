package redisadapter

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/loopback"
	"github.com/walcast/walcast/internal/redistest"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and returns
// the cert and key paths and a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM, err := loopback.SelfSignedCert("127.0.0.1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, pool
}

// Both adapters work over rediss:// as an ACL user created with ACL SETUSER;
// a wrong password is a clear error at start.
func TestTLSAndACLUser(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	// The file was just created, so the redis-server child (maybe another
	// user) must be able to read it.
	_ = os.Chmod(filepath.Dir(certFile), 0o755)
	tlsPort, err := loopback.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Run(t, redistest.Options{ExtraArgs: []string{
		"--tls-port", fmt.Sprint(tlsPort),
		"--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-auth-clients", "no",
	}})
	admin, err := NewClient(srv.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	// Keys and channels of the adapters only: socket.io* and the mark.
	// PSUBSCRIBE patterns are checked literally against the ACL's channel
	// patterns, so the pub/sub adapter's "socket.io#/#*" is listed as such.
	if err := admin.Do(ctx, "ACL", "SETUSER", "walcast", "on", ">s3cret",
		"~socket.io*", "~mark*", "&socket.io*", "&socket.io#/#*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("rediss://walcast:s3cret@127.0.0.1:%d/0", tlsPort)

	for _, kind := range adapterKinds {
		t.Run(kind.name, func(t *testing.T) {
			rc, err := NewClient(url, pool)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if who, err := rc.Do(ctx, "ACL", "WHOAMI").Text(); err != nil || who != "walcast" {
				t.Fatalf("ACL WHOAMI = %q, %v", who, err)
			}
			srvA, addr := startServer(t, kind.make(t, rc))
			c := connectGo(t, "c", addr, "r1")
			waitRoom(t, srvA, "r1", 1)
			if err := srvA.Sockets().To("r1").Emit("overTLS"); err != nil {
				t.Fatal(err)
			}
			if err := srvA.Sockets().Emit("end"); err != nil {
				t.Fatal(err)
			}
			if got := c.eventsUntil(t, "end"); !slices.Equal(got, []string{"overTLS"}) {
				t.Errorf("got %v", got)
			}
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		rc, err := NewClient(strings.Replace(url, "s3cret", "nope", 1), pool)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		_, err = NewStreams(ctx, rc, StreamsOptions{})
		if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Fatalf("NewStreams with a wrong password: %v, want WRONGPASS", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		rc, err := NewClient(url, x509.NewCertPool())
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := NewStreams(ctx, rc, StreamsOptions{}); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("NewStreams with an untrusted server: %v, want a certificate error", err)
		}
	})
}
