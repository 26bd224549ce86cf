//go:build !linux

package pgxroute

import "net"

// pendingInput reports whether data waits, unread, in the receive queue of
// the socket c. Elsewhere than on Linux it does not look, and a stall probe
// counts only what the prober read.
func pendingInput(net.Conn) bool { return false }
