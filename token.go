package pgxroute

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"time"

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

// MiddlewareOptions configures MiddlewareWith.
type MiddlewareOptions struct {
	// Cookie, when set, is the name of a cookie that carries the scope's
	// read-your-writes token from a response to the client's next request
	// (a POST followed by a redirected GET sees its own write).
	Cookie string
	// CookieMaxAge bounds the cookie's life. Zero: 60s (a token only
	// matters until the replicas catch up).
	CookieMaxAge time.Duration
	// Header, when set, is the name of a request header that carries a
	// token in, and of the response header that carries it out.
	Header string
}

// MiddlewareWith returns a middleware like Middleware that also carries the
// scope's read-your-writes token in a cookie or a header. A malformed token
// is ignored: the request gets a fresh scope.
func MiddlewareWith(opts MiddlewareOptions) func(http.Handler) http.Handler {
	maxAge := opts.CookieMaxAge
	if maxAge <= 0 {
		maxAge = time.Minute
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var in string
			if opts.Header != "" {
				in = r.Header.Get(opts.Header)
			}
			if in == "" && opts.Cookie != "" {
				if c, err := r.Cookie(opts.Cookie); err == nil {
					in = c.Value
				}
			}
			ctx, _ := WithToken(r.Context(), in) // a bad token: a fresh scope
			tw := &tokenWriter{ResponseWriter: w, ctx: ctx, opts: opts, maxAge: maxAge}
			next.ServeHTTP(tw, r.WithContext(ctx))
			tw.flushToken()
		})
	}
}

// tokenWriter sets the token on the response just before its header is
// written.
type tokenWriter struct {
	http.ResponseWriter
	ctx    context.Context
	opts   MiddlewareOptions
	maxAge time.Duration
	wrote  bool
}

func (w *tokenWriter) flushToken() {
	if w.wrote {
		return
	}
	w.wrote = true
	tok := Token(w.ctx)
	if tok == "" {
		return
	}
	if w.opts.Header != "" {
		w.Header().Set(w.opts.Header, tok)
	}
	if w.opts.Cookie != "" {
		http.SetCookie(w.ResponseWriter, &http.Cookie{
			Name: w.opts.Cookie, Value: tok, Path: "/", MaxAge: int(w.maxAge / time.Second),
			HttpOnly: true, SameSite: http.SameSiteLaxMode,
		})
	}
}

// WriteHeader sets the token, then writes the header.
func (w *tokenWriter) WriteHeader(code int) {
	w.flushToken()
	w.ResponseWriter.WriteHeader(code)
}

// Write sets the token if the header is not written yet, then writes.
func (w *tokenWriter) Write(b []byte) (int, error) {
	w.flushToken()
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *tokenWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
