package security

import (
	"context"
	"net"
	"strings"
	"time"
)

// OnLoopback reports whether a host:port (or a bare host) can only be
// reached from this machine: its host is a loopback IP, or a name that
// resolves to loopback addresses only. An empty or unspecified host
// (0.0.0.0, ::) binds every interface, and a name that does not resolve
// proves nothing: both count as off loopback.
func OnLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return false
		}
	}
	return true
}
