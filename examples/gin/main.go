// Command gin serves users with gin. Gin middleware is not an http.Handler
// wrapper, so scope gives each request a scope with pgxroute.WithScope; the
// handlers pass c.Request.Context() to the store.
//
//	PRIMARY_URL=postgres://... REPLICA_URLS=postgres://... go run ./gin
package main

import (
	"context"
	"errors"
	"log"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/examples/internal/app"
)

// scope is pgxroute.Middleware for gin: a fresh scope per request.
func scope(c *gin.Context) {
	c.Request = c.Request.WithContext(pgxroute.WithScope(c.Request.Context()))
	c.Next()
}

func main() {
	db, err := app.Open(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store := app.Store{DB: db}

	r := gin.New()
	r.Use(gin.Logger(), gin.Recovery(), scope)
	r.GET("/users/:id", func(c *gin.Context) {
		id, err := strconv.ParseInt(c.Param("id"), 10, 64)
		if err != nil {
			c.String(http.StatusBadRequest, "bad id")
			return
		}
		u, err := store.Get(c.Request.Context(), id)
		reply(c, u, err)
	})
	r.POST("/users", func(c *gin.Context) {
		var in struct {
			Name string `json:"name" binding:"required"`
		}
		if err := c.ShouldBindJSON(&in); err != nil {
			c.String(http.StatusBadRequest, err.Error())
			return
		}
		ctx := c.Request.Context()
		u, err := store.Create(ctx, in.Name)
		if err == nil {
			u, err = store.Get(ctx, u.ID) // sticky: the primary
		}
		reply(c, u, err)
	})

	log.Fatal(r.Run(app.Addr()))
}

func reply(c *gin.Context, v any, err error) {
	switch {
	case errors.Is(err, app.ErrNotFound):
		c.String(http.StatusNotFound, err.Error())
	case err != nil:
		c.String(http.StatusInternalServerError, err.Error())
	default:
		c.JSON(http.StatusOK, v)
	}
}
