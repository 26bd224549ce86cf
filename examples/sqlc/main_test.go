package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pashagolub/pgxmock/v4"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// TestRouting checks, with no database, where the generated queries of each
// request go: routingtest.NewFake records every routing decision, and
// pgxmock answers the primary's queries with canned rows.
func TestRouting(t *testing.T) {
	primary, err := pgxmock.NewPool()
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close()
	primary.ExpectQuery("INSERT INTO users").WithArgs("ann").
		WillReturnRows(pgxmock.NewRows([]string{"id", "name"}).AddRow(int64(1), "ann"))
	primary.ExpectQuery("SELECT id, name FROM users").WithArgs(int64(1)).
		WillReturnRows(pgxmock.NewRows([]string{"id", "name"}).AddRow(int64(1), "ann"))

	f := routingtest.NewFake(t, routingtest.FakeOptions{
		Mocks: map[string]pgxroute.Backend{"primary": primary},
	})
	h := handler(f.Pool)

	serve := func(method, path, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
		return w
	}
	if w := serve("POST", "/users", `{"name":"ann"}`); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"name":"ann"`) {
		t.Fatalf("POST /users: %d %s", w.Code, w.Body)
	}
	// The replicas have no mock: they answer no rows.
	if w := serve("GET", "/users/1", ""); w.Code != http.StatusNotFound {
		t.Fatalf("GET /users/1: %d %s", w.Code, w.Body)
	}
	if err := primary.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}

	type where struct {
		Node   string
		Reason pgxroute.Reason
	}
	want := []where{
		{"primary", pgxroute.ReasonWrite},  // CreateUser
		{"primary", pgxroute.ReasonSticky}, // GetUser in the request that wrote
		{"replica1", pgxroute.ReasonRead},  // GetUser in a new request
	}
	calls := f.Calls()
	if len(calls) != len(want) {
		t.Fatalf("calls: %v", calls)
	}
	for i, c := range calls {
		if got := (where{c.Node, c.Reason}); got != want[i] {
			t.Errorf("call %d: %v, want %v", i, c, want[i])
		}
	}
}
