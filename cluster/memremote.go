package cluster

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/proto"
)

// memActors is one node's actor transport on a MemNetwork: a message to
// an actor of another node is copied (as encoding it would) and posted to
// that actor's mailbox. Like the gRPC transport it carries protobuf
// messages only, in order from one sender, and when a node stops the
// others are told its endpoint terminated.
type memActors struct {
	net     *MemNetwork
	name    string
	addr    string
	system  *actor.ActorSystem
	stopped bool // guarded by net.mu
}

func (t *memActors) Start(system *actor.ActorSystem) (string, error) {
	n := t.net
	n.mu.Lock()
	t.addr, t.system = n.nextAddr().String(), system
	n.actors[t.addr] = t
	n.mu.Unlock()
	system.ProcessRegistry.Address = t.addr
	system.ProcessRegistry.RegisterAddressResolver(func(pid *actor.PID) (actor.Process, bool) {
		return memProcess{from: t}, true
	})
	return t.addr, nil
}

// Shutdown stops the node's transport and tells every other node its
// endpoint terminated, as a dropped connection would.
func (t *memActors) Shutdown() {
	n := t.net
	n.mu.Lock()
	t.stopped = true
	var others []*actor.ActorSystem
	for _, o := range n.actors {
		if o != t && !o.stopped {
			others = append(others, o.system)
		}
	}
	n.mu.Unlock()
	for _, s := range others {
		s.EventStream.Publish(&remote.EndpointTerminatedEvent{Address: t.addr})
	}
}

// peer returns the running node at addr that from may reach, or nil.
func (n *MemNetwork) actorPeer(from *memActors, addr string) *actor.ActorSystem {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.actors[addr]
	if t == nil || t.stopped || from.stopped || n.cut[pairOf(from.name, t.name)] {
		return nil
	}
	return t.system
}

// memProcess stands for an actor of another node.
type memProcess struct{ from *memActors }

func (p memProcess) SendUserMessage(pid *actor.PID, message any) {
	env, _ := message.(*actor.MessageEnvelope)
	msg := message
	if env != nil {
		msg = env.Message
	}
	pm, ok := msg.(proto.Message)
	if !ok {
		return // the gRPC transport could not encode it either
	}
	target := p.from.net.actorPeer(p.from, pid.Address)
	if target == nil {
		// Lost, and told as the gRPC transport tells a message it could
		// not send.
		var sender *actor.PID
		if env != nil {
			sender = env.Sender
		}
		p.from.system.EventStream.Publish(&actor.DeadLetterEvent{PID: pid, Message: msg, Sender: sender})
		return
	}
	proc, _ := target.ProcessRegistry.GetLocal(pid.Id)
	copied := proto.Clone(pm)
	if env != nil {
		proc.SendUserMessage(pid, &actor.MessageEnvelope{Header: env.Header, Message: copied, Sender: env.Sender})
		return
	}
	proc.SendUserMessage(pid, copied)
}

func (p memProcess) SendSystemMessage(pid *actor.PID, message any) {
	if target := p.from.net.actorPeer(p.from, pid.Address); target != nil {
		proc, _ := target.ProcessRegistry.GetLocal(pid.Id)
		proc.SendSystemMessage(pid, message)
	}
}

func (p memProcess) Stop(pid *actor.PID) { p.SendSystemMessage(pid, &actor.Stop{}) }
