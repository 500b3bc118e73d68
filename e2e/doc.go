// Package e2e holds the end-to-end tests of walcast's Socket.IO server
// against the official socket.io-client (Node, pinned in package.json).
//
// `go test ./e2e/` starts an in-process server per scenario on a free
// loopback port and runs the Node scripts under scenarios/ against it; each
// script asserts what the browser sees, the Go test asserts what the server
// saw. Package sioclient runs the scripts and the generic client.mjs for
// other packages' tests (e.g. walcast's binary with real tokens).
package e2e
