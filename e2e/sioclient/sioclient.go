// Package sioclient runs the official socket.io-client (Node, pinned in
// e2e/package.json) from Go tests: one-shot scenario scripts that print JSON
// lines and exit non-zero on failure (Run), and the interactive client
// e2e/client.mjs that a test drives over stdin (Start).
//
// Node is a hard requirement, not an optional extra: without it, tests fail
// with a message saying so, because skipping would report success for a
// browser contract nobody checked.
package sioclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/npmci"
)

// Line is one JSON line a Node script printed. Kind says what it is
// ("result", "fail", "connect", "event", ...); the other fields are set for
// the kinds that have them (see e2e/client.mjs). Raw is the whole line.
type Line struct {
	Kind    string            `json:"kind"`
	Client  int               `json:"client"`
	ID      string            `json:"id,omitempty"`
	Event   string            `json:"event,omitempty"`
	Args    []json.RawMessage `json:"args,omitempty"`
	AckRef  int               `json:"ackRef,omitempty"`
	Ref     string            `json:"ref,omitempty"`
	Message string            `json:"message,omitempty"`
	Data    json.RawMessage   `json:"data,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	Error   string            `json:"error,omitempty"`
	Raw     json.RawMessage   `json:"-"`
}

// Decode unmarshals the whole line into v (for kind-specific fields).
func (l Line) Decode(v any) error {
	if err := json.Unmarshal(l.Raw, v); err != nil {
		return fmt.Errorf("decode %s line: %w", l.Kind, err)
	}
	return nil
}

// Arg unmarshals argument i of an event or ack line into v.
func (l Line) Arg(i int, v any) error {
	if i < 0 || i >= len(l.Args) {
		return fmt.Errorf("%s line has %d args, want index %d", l.Kind, len(l.Args), i)
	}
	if err := json.Unmarshal(l.Args[i], v); err != nil {
		return fmt.Errorf("arg %d of %s line: %w", i, l.Kind, err)
	}
	return nil
}

// Binary marks bytes in command arguments: the scripts turn
// {"$binary": base64} into a Buffer, and print received Buffers the same way.
type Binary []byte

// MarshalJSON encodes b as {"$binary": base64}.
func (b Binary) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string][]byte{"$binary": b})
}

// UnmarshalJSON decodes {"$binary": base64}.
func (b *Binary) UnmarshalJSON(data []byte) error {
	var v struct {
		B *[]byte `json:"$binary"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("decode binary: %w", err)
	}
	if v.B == nil {
		return errors.New(`decode binary: no "$binary" field`)
	}
	*b = *v.B
	return nil
}

func parseLine(raw []byte) (Line, error) {
	var l Line
	if err := json.Unmarshal(raw, &l); err != nil {
		return Line{}, fmt.Errorf("script printed a non-JSON line %q: %w", raw, err)
	}
	l.Raw = append(json.RawMessage(nil), raw...)
	return l, nil
}

// Dir is the e2e folder holding package.json and the scripts. It is found
// from this source file's location, or WALCAST_E2E_DIR when set (e.g. for a
// test binary built with -trimpath).
func Dir() (string, error) {
	if d := os.Getenv("WALCAST_E2E_DIR"); d != "" {
		return d, nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", errors.New("cannot locate the e2e folder from the source path: set WALCAST_E2E_DIR")
	}
	return filepath.Dir(filepath.Dir(file)), nil
}

var setupOnce struct {
	sync.Once
	dir string
	err error
}

// Setup checks that node is installed and that e2e/node_modules holds the
// pinned client, running `npm ci` once when it does not. It is safe to call
// from parallel test processes: npm ci runs under an exclusive file lock.
func Setup() (dir string, err error) {
	setupOnce.Do(func() { setupOnce.dir, setupOnce.err = setup() })
	return setupOnce.dir, setupOnce.err
}

func setup() (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", errors.New("node is not installed (or not on PATH): the end-to-end tests run the official socket.io-client under Node.js >= 18; install it, e.g. apt-get install nodejs npm")
	}
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	if err := npmci.Ensure(dir, "socket.io-client"); err != nil {
		return "", err
	}
	return dir, nil
}

// Options for Run.
type Options struct {
	URL     string            // WALCAST_URL, e.g. "http://127.0.0.1:1234"
	Path    string            // WALCAST_PATH; default "/socket.io/"
	Env     map[string]string // extra environment
	Timeout time.Duration     // whole-script limit; default 60s
}

func (o Options) environ(scriptTimeout time.Duration) []string {
	env := append(os.Environ(), "WALCAST_URL="+o.URL, fmt.Sprintf("WALCAST_TIMEOUT_MS=%d", scriptTimeout.Milliseconds()))
	if o.Path != "" {
		env = append(env, "WALCAST_PATH="+o.Path)
	}
	for k, v := range o.Env {
		env = append(env, k+"="+v)
	}
	return env
}

// Result is what a script printed and how it ended.
type Result struct {
	Lines  []Line
	Stderr string
	Err    error // non-nil when the script failed, with its fail line or stderr
}

// Final returns the script's closing "result" line.
func (r Result) Final() (Line, bool) {
	for i := len(r.Lines) - 1; i >= 0; i-- {
		if r.Lines[i].Kind == "result" {
			return r.Lines[i], true
		}
	}
	return Line{}, false
}

// Kind returns the lines of one kind, in order.
func (r Result) Kind(kind string) []Line {
	var out []Line
	for _, l := range r.Lines {
		if l.Kind == kind {
			out = append(out, l)
		}
	}
	return out
}

// Run runs `node <e2e>/<script> args...` (script may also be absolute; it
// must sit under e2e/ to import socket.io-client) to completion and decodes
// its JSON lines. A script fails by exiting non-zero; Err then carries its "fail"
// line (the assertion and stack) or, failing that, its stderr.
func Run(ctx context.Context, script string, opts Options, args ...string) Result {
	dir, err := Setup()
	if err != nil {
		return Result{Err: err}
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	if !filepath.IsAbs(script) {
		script = filepath.Join(dir, script)
	}
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = dir
	cmd.Env = opts.environ(timeout)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	runErr := cmd.Run()

	res := Result{Stderr: stderr.String()}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		l, err := parseLine(sc.Bytes())
		if err != nil {
			res.Err = err
			return res
		}
		res.Lines = append(res.Lines, l)
	}
	name := strings.Join(append([]string{script}, args...), " ")
	switch {
	case runErr != nil:
		detail := strings.TrimSpace(res.Stderr)
		if fails := res.Kind("fail"); len(fails) > 0 {
			detail = fails[len(fails)-1].Error
		}
		res.Err = fmt.Errorf("node %s: %w\n%s", name, runErr, detail)
	default:
		if _, ok := res.Final(); !ok {
			res.Err = fmt.Errorf("node %s exited 0 without a result line", name)
		}
	}
	return res
}

// RunT is Run for tests: it fails t (with the script's assertion) unless
// the script passed, and returns its lines and result line.
func RunT(t testing.TB, script string, opts Options, args ...string) (Result, Line) {
	t.Helper()
	res := Run(context.Background(), script, opts, args...)
	if res.Err != nil {
		t.Fatalf("%v", res.Err)
	}
	final, _ := res.Final()
	return res, final
}
