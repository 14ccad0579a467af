package main

// The addresses a node serves at, and the ones it gossips for other
// nodes to reach it.

import "net"

// Addr returns the address the HTTP listener bound.
func (n *Node) Addr() string { return n.ln.Addr().String() }

// TLS reports whether the listener serves TLS (wss://, https://).
func (n *Node) TLS() bool { return n.sec.client != nil }

// AdminAddr returns the address the operator endpoints are served on:
// the --admin-listen address when separate, else Addr.
func (n *Node) AdminAddr() string {
	if n.adminLn != nil {
		return n.adminLn.Addr().String()
	}
	return n.Addr()
}

// advertised is the address other nodes reach a listener at, gossiped
// for the requests they forward to it: the host as the flag wrote it (a
// DNS name or an IP address: the name a certificate for the listener
// names), the transport's host when the flag leaves the host open (:8080,
// 0.0.0.0:8080, [::]:8080: every interface, so the one other nodes
// already reach this node at), and the port the listener bound.
func advertised(flagAddr string, bound net.Addr, transport string) string {
	_, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return bound.String()
	}
	if host, _, err := net.SplitHostPort(flagAddr); err == nil && !openHost(host) {
		return net.JoinHostPort(host, port)
	}
	if host, _, err := net.SplitHostPort(transport); err == nil && !openHost(host) {
		return net.JoinHostPort(host, port)
	}
	return bound.String()
}

// openHost reports whether a listen host means every interface.
func openHost(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

// separateAdmin reports whether admin names a listener of its own: set,
// and another address than listen (or any free port).
func separateAdmin(listen, admin string) bool {
	if admin == "" {
		return false
	}
	_, port, _ := net.SplitHostPort(admin)
	return admin != listen || port == "0"
}
