package pgxroute

import (
	"context"

	"github.com/pgxroute/pgxroute/stickiness"
)

// The context keys of this package, all here.

// ctxKey keys the context value callers set, a *routing: a single lookup
// per call finds both the override and the scope.
type ctxKey struct{}

// routeKey keys the route of a call in the context its node runs it with.
type routeKey struct{}

// RouteFromContext returns the route of the routed call whose node runs
// with ctx, and whether there is one. The router puts it there only when
// Config.Tracer is set (so that a pool without a tracer pays nothing): a
// pgx tracer of a node's pool (otelpgx, say) can then label its spans with
// the route.
func RouteFromContext(ctx context.Context) (Route, bool) {
	r, ok := ctx.Value(routeKey{}).(*Route)
	if !ok {
		return Route{}, false
	}
	return *r, true
}

// routing is what a context says about routing: the innermost override and
// the innermost scope. Each With function copies its parent's and changes
// one field, so the innermost value of each wins.
type routing struct {
	ov    *override
	scope *stickiness.Scope
}

func routingFrom(ctx context.Context) routing {
	if r, ok := ctx.Value(ctxKey{}).(*routing); ok {
		return *r
	}
	return routing{}
}

func withOverride(ctx context.Context, ov *override) context.Context {
	r := routingFrom(ctx)
	r.ov = ov
	return context.WithValue(ctx, ctxKey{}, &r)
}

func withScope(ctx context.Context, s *stickiness.Scope) context.Context {
	r := routingFrom(ctx)
	r.scope = s
	return context.WithValue(ctx, ctxKey{}, &r)
}

type overrideKind uint8

const (
	overrideGroup overrideKind = iota
	overridePrimary
	overrideReplica
)

// override is a routing choice made by the caller through the context.
type override struct {
	kind  overrideKind
	group string
}

// Immutable: shared by every WithPrimary and WithReplica context.
var (
	primaryOverride = &override{kind: overridePrimary}
	replicaOverride = &override{kind: overrideReplica}
)

// WithBindGroup returns a context whose calls go to the bind group name, for
// every kind of statement, writes included. A name the RoutedPool does not
// know fails the call with ErrUnknownGroup. The innermost of WithBindGroup,
// WithPrimary and WithReplica wins.
func WithBindGroup(ctx context.Context, name string) context.Context {
	return withOverride(ctx, &override{kind: overrideGroup, group: name})
}

// WithPrimary returns a context whose calls go to the default group (the
// primary), reads included.
func WithPrimary(ctx context.Context) context.Context {
	return withOverride(ctx, primaryOverride)
}

// WithReplica returns a context whose calls go to the read group, even when
// the scope is sticky, writes included (which a replica refuses). With an
// empty read group they go to the default group.
func WithReplica(ctx context.Context) context.Context {
	return withOverride(ctx, replicaOverride)
}

// WithoutOverride returns a context in which no WithBindGroup, WithPrimary or
// WithReplica of ctx applies: calls are routed by their statements again.
func WithoutOverride(ctx context.Context) context.Context {
	return withOverride(ctx, nil)
}

// WithScope returns a context that starts a new scope: a unit of work (a
// request, a job) that remembers its own writes, so that its reads can see
// them (see Config.Stickiness). Every goroutine of the unit of work shares
// the scope through the context; it is safe for concurrent use. Without a
// scope nothing is remembered between calls.
func WithScope(ctx context.Context) context.Context {
	return withScope(ctx, stickiness.NewScope())
}

func scopeFrom(ctx context.Context) *stickiness.Scope { return routingFrom(ctx).scope }

// HasScope reports whether ctx carries a scope.
func HasScope(ctx context.Context) bool { return scopeFrom(ctx) != nil }

// IsSticky reports whether the scope of ctx has written (through a
// RoutedPool, to its default group) since it began or was last reset. In the
// StickyScope mode its reads then go to the default group; for the other
// modes Route tells where the next read goes. False without a scope.
func IsSticky(ctx context.Context) bool {
	s := scopeFrom(ctx)
	return s != nil && s.Wrote()
}

// ResetStickiness makes the scope of ctx forget its writes: its reads go to
// replicas again. It does nothing without a scope.
func ResetStickiness(ctx context.Context) {
	if s := scopeFrom(ctx); s != nil {
		s.Reset()
	}
}
