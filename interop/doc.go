// Package interop holds the interoperability tests that run the real npm
// Primus packages (in the node directory) against the Go implementation.
//
// The tests need Node.js and npm in PATH. They run "npm ci" in the node
// directory when its node_modules is missing or older than package-lock.json.
// Without Node.js the tests are skipped, unless the CI environment variable is
// set, in which case they fail.
//
// The package has no non-test code.
package interop
