package pgxroute

import (
	"net"
	"reflect"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TCPConfig configures the sockets of the pools the router creates, so that
// the kernel finds a dead network path too (a peer that vanished without a
// reset: a partition, a dropped security group, a dead host), not only a
// probe or a caller's deadline. The zero value turns it on with the
// defaults documented on each field. A pool whose ConnConfig has a DialFunc
// of its own (set in a Node.PoolConfig, or by Config.ConfigurePool, which
// runs after the router's settings) keeps it.
type TCPConfig struct {
	// Disabled keeps pgx's own dialer (keepalive after 5 minutes, no user
	// timeout).
	Disabled bool
	// KeepAliveIdle is the idle time before the first keepalive probe.
	// Default 5s.
	KeepAliveIdle time.Duration
	// KeepAliveInterval is the time between keepalive probes. Default 1s.
	KeepAliveInterval time.Duration
	// KeepAliveCount is how many unanswered probes close the connection.
	// Default 3: an idle connection over a dead path is closed after about
	// KeepAliveIdle + 3 × KeepAliveInterval (8s).
	KeepAliveCount int
	// UserTimeout (Linux TCP_USER_TIMEOUT) is how long sent data may stay
	// unacknowledged before the kernel closes the connection: a query sent
	// over a dead path fails after it. The peer's kernel acknowledges data
	// however long the query runs, so it does not bound slow queries.
	// Default 10s; negative: not set. Ignored on other systems.
	UserTimeout time.Duration
}

func (c TCPConfig) withDefaults() TCPConfig {
	if c.KeepAliveIdle <= 0 {
		c.KeepAliveIdle = 5 * time.Second
	}
	if c.KeepAliveInterval <= 0 {
		c.KeepAliveInterval = time.Second
	}
	if c.KeepAliveCount <= 0 {
		c.KeepAliveCount = 3
	}
	if c.UserTimeout == 0 {
		c.UserTimeout = 10 * time.Second
	}
	return c
}

// dialer returns the DialFunc of the router's sockets.
func (c TCPConfig) dialer() pgconn.DialFunc {
	c = c.withDefaults()
	d := &net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: c.KeepAliveIdle, Interval: c.KeepAliveInterval, Count: c.KeepAliveCount,
		},
		Control: userTimeoutControl(c.UserTimeout),
	}
	return d.DialContext
}

// defaultDialCode is the code of pgconn's default DialFunc (a method value
// of a *net.Dialer): a DialFunc with another code is the user's.
var defaultDialCode = func() uintptr {
	cfg, err := pgconn.ParseConfig("")
	if err != nil || cfg.DialFunc == nil {
		return 0
	}
	return reflect.ValueOf(cfg.DialFunc).Pointer()
}()

// setDialer gives pc the router's dialer unless its DialFunc is the user's.
func (c TCPConfig) setDialer(pc *pgxpool.Config) {
	if c.Disabled {
		return
	}
	f := pc.ConnConfig.DialFunc
	if f != nil && (defaultDialCode == 0 || reflect.ValueOf(f).Pointer() != defaultDialCode) {
		return
	}
	pc.ConnConfig.DialFunc = c.dialer()
}
