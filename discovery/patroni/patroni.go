// Package patroni discovers the members of a Patroni cluster for
// pgxroute.Config.Discovery: it reads Patroni's REST API, GET /cluster, which
// every member serves for the whole cluster.
//
// A Discover call makes one HTTP request (more only when a REST URL fails).
// With one call every 30 s from each of 1,000 application instances, that
// is about 33 requests a second on the member that answers, each costing
// Patroni under a millisecond of CPU (see docs/membership.md, which also
// shows why calls made at the same moment by many instances must be
// spread).
package patroni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/discovery/internal/connstr"
)

// RequestTimeout bounds each GET /cluster: a REST URL that does not answer
// within it is given up for the next one. The context given to Discover
// bounds the whole call.
const RequestTimeout = 3 * time.Second

// maxBody bounds the JSON read from one answer (a cluster of hundreds of
// members takes tens of KiB).
const maxBody = 4 << 20

// ErrNoMembers is returned (wrapped) when GET /cluster answered but lists no
// member that can take calls: none running or streaming with an address.
// Discovery never empties the cluster: the router keeps the members it has.
var ErrNoMembers = errors.New("patroni: no usable member")

// Config configures a Discoverer.
type Config struct {
	// URLs are the base URLs of Patroni REST APIs, such as
	// "http://10.0.0.1:8008" (the members' restapi.connect_address). Any
	// member answers for the whole cluster; give several so that one down
	// member does not stop discovery. A URL that ends in "/cluster" is used
	// as it is. A URL may carry credentials (for a proxy in front): they are
	// sent, and never shown in an error.
	URLs []string
	// ConnString is a pgx connection string (URL or keyword/value) with the
	// user, password, database and parameters of every member's connection:
	// each member's host and port replace its host and port.
	ConnString string
}

// Discoverer reads the members of a Patroni cluster. Use New. Its Discover
// is safe for concurrent use.
type Discoverer struct {
	urls  []string // the GET /cluster endpoints
	shown []string // the same, without credentials, for errors
	tmpl  *connstr.Template
	err   error // a configuration error, returned by every Discover
	http  *http.Client
	next  atomic.Int64 // the URL to try first: the last that answered
}

var _ pgxroute.Discoverer = (*Discoverer)(nil)

// New returns a Discoverer for the Patroni cluster whose REST APIs are at
// cfg.URLs. A bad configuration (no URL, a malformed URL or connection
// string) is returned by every Discover, wrapping pgxroute.ErrConfig.
func New(cfg Config) *Discoverer {
	d := &Discoverer{http: &http.Client{
		// Keep-alive connections would hold one of the Patroni REST API's
		// threads per application instance between two calls many seconds
		// apart: each call opens its own connection.
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DisableKeepAlives:     true,
			TLSHandshakeTimeout:   RequestTimeout,
			ResponseHeaderTimeout: RequestTimeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	if len(cfg.URLs) == 0 {
		d.err = fmt.Errorf("%w: patroni: Config.URLs is empty", pgxroute.ErrConfig)
		return d
	}
	for i, raw := range cfg.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.err = fmt.Errorf("%w: patroni: Config.URLs[%d] is not an http or https URL", pgxroute.ErrConfig, i)
			return d
		}
		u.RawQuery, u.Fragment = "", ""
		if !strings.HasSuffix(u.Path, "/cluster") {
			u.Path = strings.TrimSuffix(u.Path, "/") + "/cluster"
		}
		d.urls = append(d.urls, u.String())
		d.shown = append(d.shown, redacted(u))
	}
	tmpl, err := connstr.Parse(cfg.ConnString)
	if err != nil {
		d.err = fmt.Errorf("%w: patroni: Config.ConnString: %w", pgxroute.ErrConfig, err)
		return d
	}
	d.tmpl = tmpl
	return d
}

// redacted is u without its credentials.
func redacted(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// Discover returns the cluster's members that are running or streaming,
// the leader first (the router's first guess of the primary: roles still
// come from its probes), then the others by name. Each Node has the Patroni
// member's name and the configured connection string with the member's host
// and port; a member tagged noloadbalance has NoReads. It asks the REST URLs
// in turn, starting with the last one that answered, until one answers; each
// request is bounded by RequestTimeout and all of them by ctx.
func (d *Discoverer) Discover(ctx context.Context) ([]pgxroute.Node, error) {
	if d.err != nil {
		return nil, d.err
	}
	start := int(d.next.Load())
	var errs []error
	for i := range d.urls {
		k := (start + i) % len(d.urls)
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		c, err := d.get(ctx, k)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d.next.Store(int64(k))
		nodes, err := c.nodes(d.tmpl)
		if err != nil {
			return nil, fmt.Errorf("patroni: GET %s: %w", d.shown[k], err)
		}
		return nodes, nil
	}
	return nil, fmt.Errorf("patroni: no REST API answered: %w", errors.Join(errs...))
}

// get reads and decodes GET /cluster from the k-th URL. Its errors name the
// URL without credentials; the client's own errors, which name the URL as
// requested, are not passed on.
func (d *Discoverer) get(ctx context.Context, k int) (*cluster, error) {
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	fail := func(format string, args ...any) (*cluster, error) {
		return nil, fmt.Errorf("GET %s: "+format, append([]any{d.shown[k]}, args...)...)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.urls[k], nil)
	if err != nil {
		return fail("%w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold credentials
		}
		return fail("%w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return fail("%s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fail("%w", err)
	}
	if len(body) > maxBody {
		return fail("the answer is larger than %d bytes", maxBody)
	}
	var c cluster
	if err := json.Unmarshal(body, &c); err != nil {
		return fail("not Patroni's /cluster JSON: %w", err)
	}
	if c.Members == nil {
		return fail("not Patroni's /cluster JSON: no members list")
	}
	return &c, nil
}

// cluster is the part of GET /cluster that discovery reads.
type cluster struct {
	Members []member `json:"members"`
}

// member is one member of GET /cluster. Lag and timeline are left out: the
// router's probes measure them.
type member struct {
	Name  string         `json:"name"`
	Role  string         `json:"role"`  // leader, standby_leader, replica, sync_standby, quorum_standby...
	State string         `json:"state"` // running, streaming, starting, stopped, creating replica, in archive recovery...
	Host  string         `json:"host"`
	Port  int            `json:"port"`
	Tags  map[string]any `json:"tags"`
}

// usable reports whether m can take calls: running (a leader, or a replica
// before Patroni 3.0.4) or streaming (a replica since), with an address.
func (m member) usable() bool {
	return (m.State == "running" || m.State == "streaming") && m.Host != "" && m.Port > 0 && m.Port < 1<<16
}

// leaderRank orders the leader first, then a standby cluster's leader, then
// the rest.
func (m member) leaderRank() int {
	switch m.Role {
	case "leader", "master", "primary":
		return 0
	case "standby_leader":
		return 1
	}
	return 2
}

// nodes turns the usable members into Nodes, the leader first, then by name.
func (c *cluster) nodes(tmpl *connstr.Template) ([]pgxroute.Node, error) {
	seen := map[string]bool{}
	var ms []member
	for _, m := range c.Members {
		if m.Name == "" {
			return nil, errors.New("a member without a name")
		}
		if seen[m.Name] {
			return nil, fmt.Errorf("member %q is listed twice", m.Name)
		}
		seen[m.Name] = true
		if m.usable() {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%w: %d members listed, none running or streaming with an address", ErrNoMembers, len(c.Members))
	}
	slices.SortFunc(ms, func(a, b member) int {
		if r := a.leaderRank() - b.leaderRank(); r != 0 {
			return r
		}
		return strings.Compare(a.Name, b.Name)
	})
	nodes := make([]pgxroute.Node, len(ms))
	for i, m := range ms {
		nodes[i] = pgxroute.Node{
			Name:       m.Name,
			ConnString: tmpl.With([]string{m.Host}, uint16(m.Port)),
			NoReads:    truthy(m.Tags["noloadbalance"]),
		}
	}
	return nodes, nil
}

// truthy reads a Patroni tag as a boolean: true, a non-zero number, or a
// string Patroni's parse_bool takes for true ("true", "yes", "on", "1"...).
func truthy(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case float64:
		return v != 0
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "1", "t", "true", "y", "yes", "on":
			return true
		}
	}
	return false
}
