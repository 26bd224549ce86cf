package pgxroute

import (
	"context"
	"net/http"
	"time"
)

// HTTP middleware: a scope per request, and read-your-writes tokens carried
// in a cookie or a header.

// Middleware gives every HTTP request a fresh scope (WithScope), so that a
// request that writes reads its own writes. To carry read-your-writes
// positions across requests, see MiddlewareWith.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(WithScope(r.Context())))
	})
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
