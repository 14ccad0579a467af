// Package clusterpb holds what nodes send each other: the protobuf
// messages of cluster.proto (cluster.pb.go is generated from it by `make
// proto`; `make test` checks the two agree), every one carried in an
// Envelope so that a node can skip a kind of body it does not know yet.
package clusterpb

// Version is the cluster protocol version this build speaks.
const Version = 2

// Wrap puts one message body in an Envelope.
func Wrap(body isEnvelope_Body) *Envelope {
	return &Envelope{Version: Version, Body: body}
}
