package pgtemp

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/walcast/walcast/internal/loopback"
)

// writeCert generates a self-signed certificate for 127.0.0.1 and localhost
// into the data directory (server.crt/server.key, readable by the server
// user only, as PostgreSQL insists) and a copy of the certificate as
// root.crt for clients.
func (s *Server) writeCert() error {
	certPEM, keyPEM, err := loopback.SelfSignedCert("pgtemp 127.0.0.1", 24*time.Hour)
	if err != nil {
		return err
	}
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{filepath.Join(s.dataDir, "server.crt"), certPEM, 0o644},
		{filepath.Join(s.dataDir, "server.key"), keyPEM, 0o600},
		{s.RootCertFile(), certPEM, 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
		if err := s.chown(f.path); err != nil {
			return err
		}
	}
	return nil
}
