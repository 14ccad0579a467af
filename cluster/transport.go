package cluster

import (
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Message sizes on the transport.
//
// protoactor's remote carries everything one node sends another over one
// gRPC stream, and its endpoint writer packs up to EndpointWriterBatchSize
// queued envelopes (1000 by default) into one gRPC message. gRPC refuses a
// message over its receive limit (4 MB by default), and the refusal costs
// the stream, not the message: the receiving node's reader fails, the
// sending node's writer sees the stream end and stops, and everything
// queued to that node goes with it. Replies are lost without a word (their
// requests time out on the asking node), event batches are lost (watchers
// miss events), and the next message opens a new connection.
//
// The largest envelope the default protocol.Limits allow is a reply to
// messages.history with 100 messages. The JSON the server writes escapes
// '<', '>', '&' and control characters in six bytes, so a message at the
// limits encodes to at most about 252 KB: text (4000 bytes) 24 KB, data
// and metadata (8 KiB each) 49 KB each, 10 attachments (ids, names of
// 200 bytes, MIME types of 255) 45 KB, 50 mentions of 128-byte ids 39 KB,
// 32 reaction names of 64 bytes (in reactions and my_reactions) 25 KB, 16
// tags of 200 bytes 19 KB, the ids the rest. A page of 100 is 25.2 MB
// (TestWorstHistoryPageFitsAnEnvelope builds it). Every other envelope is
// smaller: a join or watch reply holds 25 messages, the channel and 1 MiB
// of events (or one larger event): about 7.7 MB; one command's events are
// a few messages at most; a hand-off chunk is 512 KiB and a record; a
// rewatch request names at most 5000 sessions (about 5 MB when every user
// id is 128 bytes of escaped characters).
//
// MaxEnvelopeBytes, 32 MiB (33.5 MB), covers the largest with a third
// more room than it needs. A reply over it is replaced by a too_large
// error where it is made (actors.replyEnvelope), so it fails cleanly
// instead of taking the connection down: only a raised limit gets there.
// The endpoint writer bounds a batch by count, not bytes, so a batch of
// endpointBatch envelopes holds at most endpointBatch × MaxEnvelopeBytes
// plus its own framing (type names, target PIDs, a few bytes per
// envelope: well under 1 MiB). The gRPC limits, on the server and the
// client side of every connection, are that bound: 513 MiB. It is a
// limit, not an allocation: gRPC allocates what a message holds. Sixteen
// envelopes per gRPC message still amortise the per-message cost when
// many small ones queue up.
const (
	// MaxEnvelopeBytes bounds one encoded Envelope sent to another node.
	MaxEnvelopeBytes = 32 << 20
	// endpointBatch is how many envelopes go in one gRPC message.
	endpointBatch = 16
	// maxTransportMessage is the largest gRPC message a node sends or
	// accepts: a full batch of the largest envelopes and its framing.
	maxTransportMessage = endpointBatch*MaxEnvelopeBytes + 1<<20
)

// remoteConfig configures protoactor's remote transport. With creds (mutual
// TLS, see secure.go) both the server and every connection this node dials
// use them; without, the transport is plaintext.
// Streams the server does not know (every method but protoactor's) go to
// unknown, which serves the raft stream (raftstream.go) on the same port,
// credentials and interceptors.
func remoteConfig(host string, port int, creds credentials.TransportCredentials, dial []grpc.DialOption, log *slog.Logger, unknown grpc.StreamHandler) *remote.Config {
	rcfg := remote.Configure(host, port,
		remote.WithEndpointWriterQueueSize(65536),
		remote.WithEndpointManagerQueueSize(65536),
		remote.WithEndpointWriterBatchSize(endpointBatch),
		remote.WithServerOptions(serverOptions(creds, log, unknown)...),
		// These replace protoactor's default dial options, which are only
		// the insecure transport.
		remote.WithDialOptions(dial...))
	rcfg.MaxRetryCount = 1 // our own tracking fails calls; don't stall writers
	return rcfg
}

// serverOptions configure the transport's gRPC server: message size
// limits, the recovering interceptor, creds (nil: plaintext) and the
// handler of streams protoactor does not serve.
func serverOptions(creds credentials.TransportCredentials, log *slog.Logger, unknown grpc.StreamHandler) []grpc.ServerOption {
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(maxTransportMessage), grpc.MaxSendMsgSize(maxTransportMessage),
		grpc.ChainStreamInterceptor(recoverStreams(log))}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	if unknown != nil {
		opts = append(opts, grpc.UnknownServiceHandler(unknown))
	}
	return opts
}

// dialOptions are how this node dials another's transport: with creds
// (nil: plaintext), the message size limits of the server side, and
// through p when fault injection is on (nil: directly).
func dialOptions(creds credentials.TransportCredentials, p *Partition) []grpc.DialOption {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxTransportMessage), grpc.MaxCallSendMsgSize(maxTransportMessage))}
	if p != nil {
		opts = append(opts, grpc.WithContextDialer(p.dialer))
	}
	return opts
}

// recoverStreams ends a stream whose handler panicked with an error, not
// the process: protoactor's reader panics on a message type this node
// does not know, which a newer peer (or a broken one) may send.
func recoverStreams(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				from := "unknown"
				if pr, ok := grpcpeer.FromContext(ss.Context()); ok {
					from = pr.Addr.String()
				}
				log.Error("a node-to-node stream failed on what the peer sent; closing it", "peer", from, "method", info.FullMethod, "panic", p)
				err = status.Error(codes.Internal, "the stream failed")
			}
		}()
		return handler(srv, ss)
	}
}

// ActorTransport carries actor messages between nodes: protoactor's gRPC
// remote at Config.RemoteAddr, or a MemNetwork's in tests.
type ActorTransport interface {
	// Start makes system's actors reachable from other nodes and returns
	// the address they reach them at (the node's remote address).
	Start(system *actor.ActorSystem) (addr string, err error)
	// Shutdown stops it: what is sent to or from the node is lost.
	Shutdown()
}

// grpcTransport is protoactor's remote, listening on host:port, secured
// by creds when set (mutual TLS, see secure.go).
type grpcTransport struct {
	host  string
	port  int
	creds credentials.TransportCredentials
	dial  []grpc.DialOption // dialOptions
	log   *slog.Logger
	raft  *raftStreams // serves incoming raft streams
	r     *remote.Remote
}

func (t *grpcTransport) Start(system *actor.ActorSystem) (string, error) {
	t.r = remote.NewRemote(system, remoteConfig(t.host, t.port, t.creds, t.dial, t.log, t.raft.serve))
	if err := startRemote(t.r); err != nil {
		return "", err
	}
	return system.Address(), nil
}

func (t *grpcTransport) Shutdown() { t.r.Shutdown(false) }

// startRemote starts the transport, turning its listen panic into an error.
func startRemote(r *remote.Remote) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("start remote: %v", p)
		}
	}()
	r.Start()
	return nil
}
