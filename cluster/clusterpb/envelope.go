package clusterpb

// Version is the cluster protocol version this build speaks.
const Version = 1

// Wrap puts one message body in an Envelope.
func Wrap(body isEnvelope_Body) *Envelope {
	return &Envelope{Version: Version, Body: body}
}
