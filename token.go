package pgxroute

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"github.com/pgxroute/pgxroute/stickiness"
)

const (
	tokenPrefix = "v1."
	tokenBytes  = 8 + 4 + 8 + 1 // system id, timeline, position, flags
)

var tokenEncoding = base64.RawURLEncoding

// Token returns the read-your-writes position of the scope of ctx as an
// opaque string, to carry to another request or process (a cookie, a
// header, a job's payload), or "" when there is nothing to carry: no scope,
// or a scope with no position (in ReadYourWrites mode a scope gets one from
// its writes, and from its reads for monotonic reads; other modes give
// none). WithToken starts a scope
// from it. A token is not a secret and grants nothing but reads that wait
// for a position the primary has reached.
func Token(ctx context.Context) string {
	s := scopeFrom(ctx)
	if s == nil {
		return ""
	}
	t, ok := s.Position()
	if !ok {
		return ""
	}
	var b [tokenBytes]byte
	binary.BigEndian.PutUint64(b[0:], t.Origin.SystemID)
	binary.BigEndian.PutUint32(b[8:], t.Origin.Timeline)
	binary.BigEndian.PutUint64(b[12:], t.LSN)
	if t.Pending {
		b[20] = 1
	}
	return tokenPrefix + tokenEncoding.EncodeToString(b[:])
}

// WithToken returns a context with a new scope that starts from token (made
// by Token, perhaps in another process): in ReadYourWrites mode its reads go
// to a replica only once it has replayed the token's position. The token is
// checked against the primary before it is trusted: one from another system
// or timeline (a failover happened) or one ahead of the primary's last known
// position makes the scope wait for the primary's next position instead, so
// a forged token can hold reads on the primary for one probe at most. An
// empty token starts an empty scope. A malformed one starts an empty scope
// and returns an error wrapping ErrBadToken.
func WithToken(ctx context.Context, token string) (context.Context, error) {
	s := stickiness.NewScope()
	ctx = withScope(ctx, s)
	if token == "" {
		return ctx, nil
	}
	t, err := parseToken(token)
	if err != nil {
		return ctx, err
	}
	s.SetToken(&t)
	return ctx, nil
}

func parseToken(token string) (stickiness.Token, error) {
	var t stickiness.Token
	if len(token) != len(tokenPrefix)+tokenEncoding.EncodedLen(tokenBytes) || token[:len(tokenPrefix)] != tokenPrefix {
		return t, fmt.Errorf("%w: wrong length or version", ErrBadToken)
	}
	var b [tokenBytes]byte
	if n, err := tokenEncoding.Decode(b[:], []byte(token[len(tokenPrefix):])); err != nil || n != tokenBytes {
		return t, fmt.Errorf("%w: not base64url", ErrBadToken)
	}
	t.Origin.SystemID = binary.BigEndian.Uint64(b[0:])
	t.Origin.Timeline = binary.BigEndian.Uint32(b[8:])
	t.LSN = binary.BigEndian.Uint64(b[12:])
	switch b[20] {
	case 0:
		if t.LSN == 0 {
			return t, fmt.Errorf("%w: no position", ErrBadToken)
		}
	case 1:
		t.Pending = true
	default:
		return t, fmt.Errorf("%w: unknown flags", ErrBadToken)
	}
	return t, nil
}
