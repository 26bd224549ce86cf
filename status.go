package pgxroute

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// StatusHandler returns an http.Handler that shows pool's state: an HTML
// page (refreshed every second by the browser, without scripts) of the
// cluster's members with their role, state, timeline, lag and WAL
// position, where writes go, the bind groups with their nodes' calls by
// reason, calls in flight, pool statistics, hedges and retries, each node's
// last error, the membership changes (nodes added, removed, still
// draining), Config.Discovery's state, and the last health events. A request with "?format=json",
// or whose Accept header asks for application/json, gets the same as JSON
// (see docs/status.md for its fields).
//
// The handler is read-only: it answers GET and HEAD (405 Method Not Allowed
// otherwise), changes nothing in the pool, routes no call and takes no lock
// that routed calls wait on, but for the node pools' own statistics
// (pgxpool.Pool.Stat). It shows no password, but it does show host names,
// ports and error messages: serve it behind the service's own admin access,
// as one does net/http/pprof.
func StatusHandler(pool *RoutedPool) http.Handler {
	return statusHandler{pool: pool}
}

type statusHandler struct{ pool *RoutedPool }

//go:embed status.html
var statusPageText string

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago":   agoText,
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
	"bytes": bytesText,
	"lag":   lagText,
}).Parse(statusPageText))

// ServeHTTP implements http.Handler.
func (h statusHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "pgxroute status: method not allowed (GET or HEAD only)", http.StatusMethodNotAllowed)
		return
	}
	if h.pool == nil {
		http.Error(w, "pgxroute status: StatusHandler was given no pool", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	doc := newStatusDoc(h.pool, time.Now())
	var buf bytes.Buffer
	if wantsJSON(r) {
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doc); err != nil {
			http.Error(w, "pgxroute status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		hdr.Set("Content-Type", "application/json; charset=utf-8")
	} else {
		if err := statusPage.Execute(&buf, doc); err != nil {
			http.Error(w, "pgxroute status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		// No script may run, no frame may hold the page; its one style
		// sheet is inline.
		hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		hdr.Set("Referrer-Policy", "no-referrer")
	}
	hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// wantsJSON reports whether r asks for JSON: ?format=json, or an Accept
// header that names application/json before (or without) text/html.
// ?format=html asks for the page whatever the header says.
func wantsJSON(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "json":
		return true
	case "html":
		return false
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || params["q"] == "0" {
			continue
		}
		switch mt {
		case "application/json":
			return true
		case "text/html":
			return false
		}
	}
	return false
}

// statusDoc is what the page shows and the JSON holds: Stat, the member
// and node states and reasons by name, and the events.
type statusDoc struct {
	Time              time.Time      `json:"time"`
	Primary           string         `json:"primary"`
	PrimaryChanges    int64          `json:"primary_changes"`
	LastPrimaryChange *time.Time     `json:"last_primary_change,omitempty"`
	SplitBrain        []string       `json:"split_brain"`
	StalePrimaries    []string       `json:"stale_primaries"`
	Members           []statusMember `json:"members"`
	Groups            []statusGroup  `json:"groups"`
	// Events are the last health events, newest first; EventsTotal counts
	// every event since the pool was made.
	Events      []statusEvent `json:"events"`
	EventsTotal uint64        `json:"events_total"`
	// Totals of the nodes of every group.
	Hedges    int64 `json:"hedges"`
	HedgeWins int64 `json:"hedge_wins"`
	Retries   int64 `json:"retries"`
	// Draining, Membership and Discovery are Stat's (Discovery absent
	// without Config.Discovery).
	Draining   []statusDraining `json:"draining"`
	Membership statusMembership `json:"membership"`
	Discovery  *statusDiscovery `json:"discovery,omitempty"`
}

// statusDraining is a DrainingStat.
type statusDraining struct {
	Name     string    `json:"name"`
	Since    time.Time `json:"since"`
	InFlight int64     `json:"in_flight"`
	Acquired int32     `json:"acquired"`
}

// statusMembership is Stat.Membership.
type statusMembership struct {
	Added         int64      `json:"added"`
	Removed       int64      `json:"removed"`
	Drained       int64      `json:"drained"`
	DrainTimeouts int64      `json:"drain_timeouts"`
	LastChange    *time.Time `json:"last_change,omitempty"`
}

// statusDiscovery is Stat.Discovery. Failing is true when the last call
// failed (its error is newer than the last success): the members are then
// the ones the last successful call gave.
type statusDiscovery struct {
	Calls         int64      `json:"calls"`
	Failures      int64      `json:"failures"`
	Failing       bool       `json:"failing"`
	LastError     string     `json:"last_error,omitempty"`
	LastErrorAt   *time.Time `json:"last_error_at,omitempty"`
	LastSuccessAt *time.Time `json:"last_success_at,omitempty"`
	Members       []string   `json:"members"`
}

type statusMember struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	State    string `json:"state"`
	Timeline uint32 `json:"timeline"`
	Primary  bool   `json:"primary"`
	Stale    bool   `json:"stale"`
	// From the member's node in the default or read group.
	Address     string        `json:"address,omitempty"`
	LagSeconds  float64       `json:"lag_seconds"`
	Lag         time.Duration `json:"-"`
	LagBytes    int64         `json:"lag_bytes"`
	Position    string        `json:"position,omitempty"`
	LastError   string        `json:"last_error,omitempty"`
	LastErrorAt *time.Time    `json:"last_error_at,omitempty"`
}

type statusGroup struct {
	Name       string       `json:"name"`
	AllLagging bool         `json:"all_lagging"`
	Nodes      []statusNode `json:"nodes"`
}

type statusNode struct {
	Name         string           `json:"name"`
	Address      string           `json:"address,omitempty"`
	Weight       int              `json:"weight"`
	State        string           `json:"state"`
	Role         string           `json:"role"`
	RoleMismatch bool             `json:"role_mismatch"`
	NoReads      bool             `json:"no_reads"`
	Calls        map[string]int64 `json:"calls"`
	CallList     []reasonCount    `json:"-"` // Calls in Reason order
	Total        int64            `json:"total"`
	InFlight     int64            `json:"in_flight"`
	Pool         *statusPool      `json:"pool,omitempty"`
	LagSeconds   float64          `json:"lag_seconds"`
	Lag          time.Duration    `json:"-"`
	LagBytes     int64            `json:"lag_bytes"`
	Position     string           `json:"position,omitempty"`
	LastError    string           `json:"last_error,omitempty"`
	LastErrorAt  *time.Time       `json:"last_error_at,omitempty"`
	Ejections    int64            `json:"ejections"`
	Readmissions int64            `json:"readmissions"`
	Retries      int64            `json:"retries"`
	Hedges       int64            `json:"hedges"`
	HedgeWins    int64            `json:"hedge_wins"`
}

type reasonCount struct {
	Name  string
	Count int64
}

// statusPool is a node's pgxpool.Stat.
type statusPool struct {
	MaxConns                int32   `json:"max_conns"`
	TotalConns              int32   `json:"total_conns"`
	IdleConns               int32   `json:"idle_conns"`
	AcquiredConns           int32   `json:"acquired_conns"`
	ConstructingConns       int32   `json:"constructing_conns"`
	AcquireCount            int64   `json:"acquire_count"`
	AcquireSeconds          float64 `json:"acquire_seconds"`
	EmptyAcquireCount       int64   `json:"empty_acquire_count"`
	CanceledAcquireCount    int64   `json:"canceled_acquire_count"`
	NewConnsCount           int64   `json:"new_conns_count"`
	MaxLifetimeDestroyCount int64   `json:"max_lifetime_destroy_count"`
	MaxIdleDestroyCount     int64   `json:"max_idle_destroy_count"`
}

type statusEvent struct {
	Kind     string    `json:"kind"`
	Node     string    `json:"node"`
	Group    string    `json:"group,omitempty"` // node_added, node_removed
	Previous string    `json:"previous,omitempty"`
	State    string    `json:"state,omitempty"` // none for primary_changed, discovery_failed, node_removed, node_drained
	Role     string    `json:"role,omitempty"`
	Err      string    `json:"error,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	At       time.Time `json:"at"`
}

// newStatusDoc takes a snapshot of p.
func newStatusDoc(p *RoutedPool, now time.Time) *statusDoc {
	st := p.Stat()
	d := &statusDoc{
		Time:           now,
		Primary:        st.Primary,
		PrimaryChanges: st.PrimaryChanges,
		SplitBrain:     nonNil(st.SplitBrain),
		StalePrimaries: nonNil(st.StalePrimaries),
		Members:        make([]statusMember, 0, len(st.Members)),
		Groups:         make([]statusGroup, 0, len(st.Groups)),
		Draining:       make([]statusDraining, 0, len(st.Draining)),
		Membership: statusMembership{
			Added: st.Membership.Added, Removed: st.Membership.Removed,
			Drained: st.Membership.Drained, DrainTimeouts: st.Membership.DrainTimeouts,
			LastChange: timePtr(st.Membership.LastChange),
		},
	}
	if !st.LastPrimaryChange.IsZero() {
		d.LastPrimaryChange = &st.LastPrimaryChange
	}
	for _, dr := range st.Draining {
		d.Draining = append(d.Draining, statusDraining(dr))
	}
	if ds := st.Discovery; ds != nil {
		d.Discovery = &statusDiscovery{
			Calls: ds.Calls, Failures: ds.Failures,
			Failing:   !ds.LastErrorAt.IsZero() && ds.LastErrorAt.After(ds.LastSuccessAt),
			LastError: ds.LastError, LastErrorAt: timePtr(ds.LastErrorAt), LastSuccessAt: timePtr(ds.LastSuccessAt),
			Members: nonNil(slices.Clone(ds.Members)),
		}
	}
	byName := map[string]*statusNode{}
	for _, g := range st.Groups {
		sg := statusGroup{Name: g.Name, AllLagging: g.AllLagging, Nodes: make([]statusNode, 0, len(g.Nodes))}
		for _, n := range g.Nodes {
			sn := statusNode{
				Name: n.Name, Weight: n.Weight, State: n.State.String(), Role: n.Role, RoleMismatch: n.RoleMismatch, NoReads: n.NoReads,
				Calls: make(map[string]int64, len(n.Calls)), Total: n.Total, InFlight: n.InFlight,
				LagSeconds: n.Lag.Seconds(), Lag: n.Lag, LagBytes: n.LagBytes, Position: n.Position,
				LastError: n.LastError, LastErrorAt: timePtr(n.LastErrorAt),
				Ejections: n.Ejections, Readmissions: n.Readmissions, Retries: n.Retries,
				Hedges: n.Hedges, HedgeWins: n.HedgeWins,
			}
			if n.Host != "" {
				sn.Address = hostPort(n.Host, n.Port)
			}
			for r := range numReasons {
				if c := n.Calls[r]; c != 0 {
					sn.Calls[r.Name()] = c
					sn.CallList = append(sn.CallList, reasonCount{r.Name(), c})
				}
			}
			if ps := n.Pool; ps != nil {
				sn.Pool = &statusPool{
					MaxConns: ps.MaxConns(), TotalConns: ps.TotalConns(), IdleConns: ps.IdleConns(),
					AcquiredConns: ps.AcquiredConns(), ConstructingConns: ps.ConstructingConns(),
					AcquireCount: ps.AcquireCount(), AcquireSeconds: ps.AcquireDuration().Seconds(),
					EmptyAcquireCount: ps.EmptyAcquireCount(), CanceledAcquireCount: ps.CanceledAcquireCount(),
					NewConnsCount: ps.NewConnsCount(), MaxLifetimeDestroyCount: ps.MaxLifetimeDestroyCount(),
					MaxIdleDestroyCount: ps.MaxIdleDestroyCount(),
				}
			}
			sg.Nodes = append(sg.Nodes, sn) // within its capacity: byName's pointers stay good
			if byName[n.Name] == nil {
				// A node's health, pool and counters of hedges and
				// retries are the node's, in whatever group: count them
				// once.
				byName[n.Name] = &sg.Nodes[len(sg.Nodes)-1]
				d.Hedges += n.Hedges
				d.HedgeWins += n.HedgeWins
				d.Retries += n.Retries
			}
		}
		d.Groups = append(d.Groups, sg)
	}
	for _, m := range st.Members {
		sm := statusMember{Name: m.Name, Role: m.Role, State: m.State.String(), Timeline: m.Timeline, Primary: m.Primary, Stale: m.Stale}
		if n := byName[m.Name]; n != nil {
			sm.Address, sm.LagSeconds, sm.Lag, sm.LagBytes, sm.Position = n.Address, n.LagSeconds, n.Lag, n.LagBytes, n.Position
			sm.LastError, sm.LastErrorAt = n.LastError, n.LastErrorAt
		}
		d.Members = append(d.Members, sm)
	}
	evs, total := p.events.recent()
	d.EventsTotal = total
	d.Events = make([]statusEvent, len(evs))
	for i, ev := range evs {
		se := statusEvent{Kind: ev.Kind.String(), Node: ev.Node, Group: ev.Group, Previous: ev.Previous,
			State: ev.State.String(), Role: ev.Role, Err: ev.Err, Detail: ev.Detail, At: ev.At}
		switch ev.Kind {
		case EventPrimaryChanged:
			// The event is about the cluster: its State is no node's.
			se.State = ""
			if ev.Node == "" {
				se.Role = ""
			}
		case EventDiscoveryFailed, EventNodeRemoved, EventNodeDrained:
			// About the discoverer, not a node; or about a node leaving,
			// whose state is no longer routed on (the event does not set
			// one).
			se.State, se.Role = "", ""
		}
		d.Events[i] = se
	}
	return d
}

// nonNil makes a nil list an empty one (JSON's [] rather than null).
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func hostPort(host string, port uint16) string {
	if port == 0 {
		return host
	}
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") && !strings.HasPrefix(host, "/") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(int(port))
}

// agoText says how long before now t (a time.Time or a *time.Time) was,
// shortly: "just now", "3s ago", "2m10s ago"; a date after a day.
func agoText(now time.Time, t any) string {
	var at time.Time
	switch v := t.(type) {
	case time.Time:
		at = v
	case *time.Time:
		if v == nil {
			return ""
		}
		at = *v
	}
	if at.IsZero() {
		return ""
	}
	switch d := now.Sub(at); {
	case d < time.Second:
		return "just now"
	case d < 24*time.Hour:
		return d.Truncate(time.Second).String() + " ago"
	}
	return at.UTC().Format("2006-01-02 15:04 UTC")
}

// lagText is a replica's replay delay, rounded for people.
func lagText(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// bytesText is a WAL distance in B, kB, MB or GB (powers of 1024, as
// PostgreSQL's pg_size_pretty).
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n)/unit, 0
	for f >= unit && i < 2 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", f, [...]string{"kB", "MB", "GB"}[i])
}
