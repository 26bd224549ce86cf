// Package otel exports what a pgxroute.RoutedPool decides to OpenTelemetry,
// using only the OpenTelemetry API (the application brings the SDK):
//
//   - NewMetrics registers observable instruments over a RoutedPool: routed
//     calls by group, node and reason, calls in flight, node state and role,
//     replica lag in seconds and bytes, ejections, re-admissions, read
//     retries, primary changes, each member's primary, timeline and
//     split-brain gauges, the membership changes (nodes added, removed,
//     drained, draining) and Config.Discovery's calls, failures, members
//     and last success, and each node's pgxpool statistics under the
//     database-client semantic conventions (db.client.connection.*); every
//     node's observations carry its server.address and server.port. They
//     read RoutedPool.Stat when the reader collects, never on a call.
//   - NewTracer is a pgxroute.RouteTracer (set it as Config.Tracer) that
//     starts a span per attempt of a routed call, carrying the route: group,
//     node, reason, statement kind, attempt, and whether it was rerun. As a
//     pgxroute.HealthTracer it counts the health events (ejections,
//     re-admissions, role and primary changes, nodes added, removed and
//     drained, discovery failures) in pgxroute.health.events.
//   - QueryTracer wraps a node's pgx tracer (otelpgx's, say; set it per node
//     through Config.ConfigurePool) so that its query spans carry the route
//     too.
//
// The module is separate from pgxroute's so that the library's go.mod stays
// free of OpenTelemetry; its name says what it adapts to. Import it as
//
//	import pgxrouteotel "github.com/pgxroute/pgxroute/otel"
//
// Every instrument and attribute is listed in docs/observability.md.
package otel
