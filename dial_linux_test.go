package pgxroute_test

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
)

// sockopts reads the keepalive and user-timeout options of a routed
// connection's socket from the kernel.
func sockopts(t *testing.T, p *pgxroute.RoutedPool, ctx context.Context) (keepalive, idle, intvl, cnt, userTimeoutMs int) {
	t.Helper()
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	tc, ok := c.Conn().PgConn().Conn().(syscall.Conn)
	if !ok {
		t.Fatalf("connection is a %T, not TCP", c.Conn().PgConn().Conn())
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) {
		get := func(level, opt int) int {
			v, err := syscall.GetsockoptInt(int(fd), level, opt)
			if err != nil {
				t.Fatalf("getsockopt %d: %v", opt, err)
			}
			return v
		}
		keepalive = get(syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		idle = get(syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
		intvl = get(syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL)
		cnt = get(syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT)
		userTimeoutMs = get(syscall.IPPROTO_TCP, 0x12) // TCP_USER_TIMEOUT
	})
	return
}

func TestSocketOptions(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	t.Run("defaults", func(t *testing.T) {
		p := newPool(t, c, pgxroute.Config{})
		ka, idle, intvl, cnt, ut := sockopts(t, p, ctx)
		if ka != 1 || idle != 5 || intvl != 1 || cnt != 3 || ut != 10000 {
			t.Errorf("keepalive %d idle %ds interval %ds count %d user timeout %dms; want 1 5 1 3 10000", ka, idle, intvl, cnt, ut)
		}
	})
	t.Run("configured", func(t *testing.T) {
		p := newPool(t, c, pgxroute.Config{TCP: pgxroute.TCPConfig{
			KeepAliveIdle: 7 * time.Second, KeepAliveInterval: 2 * time.Second, KeepAliveCount: 4, UserTimeout: 3 * time.Second}})
		ka, idle, intvl, cnt, ut := sockopts(t, p, ctx)
		if ka != 1 || idle != 7 || intvl != 2 || cnt != 4 || ut != 3000 {
			t.Errorf("keepalive %d idle %ds interval %ds count %d user timeout %dms; want 1 7 2 4 3000", ka, idle, intvl, cnt, ut)
		}
	})
	t.Run("the user's dialer wins", func(t *testing.T) {
		var d net.Dialer // no keepalive options of ours
		d.KeepAlive = -1
		p := newPool(t, c, pgxroute.Config{ConfigurePool: func(_, _ string, pc *pgxpool.Config) {
			pc.ConnConfig.DialFunc = d.DialContext
		}})
		ka, _, _, _, ut := sockopts(t, p, ctx)
		if ka != 0 || ut != 0 {
			t.Errorf("keepalive %d user timeout %dms with the user's dialer; want 0 0", ka, ut)
		}
	})
	t.Run("disabled: pgx's dialer", func(t *testing.T) {
		p := newPool(t, c, pgxroute.Config{TCP: pgxroute.TCPConfig{Disabled: true}})
		_, idle, _, _, ut := sockopts(t, p, ctx)
		if idle == 5 || ut != 0 {
			t.Errorf("idle %ds user timeout %dms with TCP.Disabled; want pgx's (not 5s, no user timeout)", idle, ut)
		}
	})
}
