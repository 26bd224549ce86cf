// Package mocktest holds the tests of package routingtest that use pgxmock
// pools as node backends (FakeOptions.Mocks). It is a nested module so that
// pgxmock, which pins the pgx versions it builds with, is not a dependency
// of the library's own module: routingtest takes any pgxroute.Backend and
// imports no mock library.
package mocktest
