package redisadapter

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/redistest"
)

// selfSigned writes a CA-less self-signed certificate for 127.0.0.1 and
// returns the cert and key paths and a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o644); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Both adapters work over rediss:// as an ACL user created with ACL SETUSER;
// a wrong password is a clear error at start.
func TestTLSAndACLUser(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	// The file was just created, so the redis-server child (maybe another
	// user) must be able to read it.
	_ = os.Chmod(filepath.Dir(certFile), 0o755)
	tlsPort := freePort(t)
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
