// Package chatpage is the browser page shared by examples/chat and
// examples/cluster: one chat UI on the served client, which shows the node
// and merges "present" answers when a cluster sends them.
package chatpage

import _ "embed"

// HTML is the page, served at "/".
//
//go:embed index.html
var HTML []byte
