// Package protocol is Switchboard's client protocol: the frames a client
// and a node exchange over WebSocket (requests, replies, events), the op,
// event and field names, the objects they carry (channels, messages,
// members), the closed set of error codes, and the limits every node
// enforces. docs/protocol.md is its contract; names are added, never
// renamed. It imports nothing of the project's: every other package
// imports it.
package protocol
