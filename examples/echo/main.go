// Command echo serves users with echo: echo.WrapMiddleware adapts
// pgxroute.Middleware, so each request gets a scope; the handlers pass
// c.Request().Context() to the store.
//
//	PRIMARY_URL=postgres://... REPLICA_URLS=postgres://... go run ./echo
package main

import (
	"context"
	"errors"
	"log"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/examples/internal/app"
)

func main() {
	db, err := app.Open(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store := app.Store{DB: db}

	e := echo.New()
	e.Use(middleware.Recover())
	e.Use(echo.WrapMiddleware(pgxroute.Middleware)) // a fresh scope per request
	e.GET("/users/:id", func(c echo.Context) error {
		id, err := strconv.ParseInt(c.Param("id"), 10, 64)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "bad id")
		}
		u, err := store.Get(c.Request().Context(), id)
		return reply(c, u, err)
	})
	e.POST("/users", func(c echo.Context) error {
		var in struct {
			Name string `json:"name"`
		}
		if err := c.Bind(&in); err != nil {
			return err
		}
		ctx := c.Request().Context()
		u, err := store.Create(ctx, in.Name)
		if err == nil {
			u, err = store.Get(ctx, u.ID) // sticky: the primary
		}
		return reply(c, u, err)
	})

	e.Logger.Fatal(e.Start(app.Addr()))
}

func reply(c echo.Context, v any, err error) error {
	switch {
	case errors.Is(err, app.ErrNotFound):
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	case err != nil:
		return err
	}
	return c.JSON(http.StatusOK, v)
}
