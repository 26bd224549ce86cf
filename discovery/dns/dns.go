// Package dns discovers the members of a replication cluster from DNS for
// pgxroute.Config.Discovery: SRV records (Consul, Kubernetes headless
// services with named ports), or A and AAAA records (Kubernetes headless
// services, round-robin names).
//
// A Discover call makes two queries (A and AAAA) for a plain name; for an
// SRV name, one SRV query and two per target (see docs/membership.md). The
// Go resolver does not cache: put a caching resolver near the applications
// when many instances share a small DNS server.
package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/discovery/internal/connstr"
)

// Timeout bounds one Discover call when its context has no sooner deadline.
const Timeout = 10 * time.Second

// ErrNoMembers is returned (wrapped) when the name has no usable record:
// discovery never empties the cluster (the router keeps the members it has).
var ErrNoMembers = errors.New("dns: no member found")

// Config configures a Discoverer.
type Config struct {
	// Name is the DNS name to look up. A name that starts with "_" is an
	// SRV name ("_postgresql._tcp.db.service.consul."): each target and
	// port is a member. Any other name ("db.prod.svc.cluster.local.") is
	// looked up for A and AAAA records: each address is a member, on
	// ConnString's port. A fully qualified name (ending in ".") spares the
	// resolver's search-domain queries.
	Name string
	// ConnString is a pgx connection string (URL or keyword/value) with the
	// user, password, database, parameters and, for A and AAAA names, the
	// port (pgx's default when it gives none: PGPORT, then 5432) of every
	// member's connection: each member's address replaces its host.
	ConnString string
	// Resolver looks the names up. Nil: net.DefaultResolver. SRV targets
	// are looked up through it too, so that names only its server knows
	// (Consul's) work; see net.Resolver's Dial to ask a given server.
	Resolver *net.Resolver
}

// Discoverer looks a cluster's members up in DNS. Use New. Its Discover is
// safe for concurrent use.
type Discoverer struct {
	name     string // as configured, for errors
	srv      bool
	resolver *net.Resolver
	tmpl     *connstr.Template
	err      error // a configuration error, returned by every Discover
}

var _ pgxroute.Discoverer = (*Discoverer)(nil)

// New returns a Discoverer for cfg. A bad configuration (no name, a
// malformed connection string) is returned by every Discover, wrapping
// pgxroute.ErrConfig.
func New(cfg Config) *Discoverer {
	d := &Discoverer{name: cfg.Name, srv: strings.HasPrefix(cfg.Name, "_"), resolver: cfg.Resolver}
	if d.resolver == nil {
		d.resolver = net.DefaultResolver
	}
	if strings.Trim(cfg.Name, ".") == "" {
		d.err = fmt.Errorf("%w: dns: Config.Name is empty", pgxroute.ErrConfig)
		return d
	}
	tmpl, err := connstr.Parse(cfg.ConnString)
	if err != nil {
		d.err = fmt.Errorf("%w: dns: %s: Config.ConnString: %w", pgxroute.ErrConfig, cfg.Name, err)
		return d
	}
	d.tmpl = tmpl
	return d
}

// Discover looks the name up and returns one Node per member, in a fixed
// order, each named "host:port" and with the configured connection string,
// its host and port replaced:
//
//   - For an SRV name, a member is a target and port, named after the target
//     ("pg-1.example.com:5432"). Its addresses are looked up through the
//     Resolver and become the connection string's hosts (several make a
//     multi-host string: one server, several addresses). A target that does
//     not exist is left out; any other lookup failure fails the call. SRV
//     priorities and weights are not used: roles come from the router's
//     probes. The members are sorted by name.
//   - For any other name, a member is an address, named "address:port" with
//     the connection string's port. The members are sorted by address
//     (numerically, IPv4 first).
//
// An answer with no member is an error wrapping ErrNoMembers. Errors name
// the name looked up and wrap the resolver's error (a *net.DNSError).
func (d *Discoverer) Discover(ctx context.Context) ([]pgxroute.Node, error) {
	if d.err != nil {
		return nil, d.err
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	if d.srv {
		return d.discoverSRV(ctx)
	}
	addrs, err := d.lookup(ctx, d.name)
	if err != nil {
		return nil, fmt.Errorf("dns: A/AAAA %s: %w", d.name, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: dns: A/AAAA %s: no address", ErrNoMembers, d.name)
	}
	port := d.tmpl.Port()
	nodes := make([]pgxroute.Node, len(addrs))
	for i, a := range addrs {
		nodes[i] = pgxroute.Node{
			Name:       net.JoinHostPort(a, strconv.Itoa(int(port))),
			ConnString: d.tmpl.With([]string{a}, port),
		}
	}
	return nodes, nil
}

func (d *Discoverer) discoverSRV(ctx context.Context) ([]pgxroute.Node, error) {
	_, srvs, err := d.resolver.LookupSRV(ctx, "", "", d.name)
	if err != nil {
		// The Go resolver returns the valid records along with an error
		// when some are malformed: fail loud rather than drop members.
		return nil, fmt.Errorf("dns: SRV %s: %w", d.name, err)
	}
	type member struct {
		target string
		port   uint16
	}
	seen := map[member]bool{}
	var nodes []pgxroute.Node
	var gone []string
	for _, s := range srvs {
		m := member{strings.TrimSuffix(s.Target, "."), s.Port}
		if m.target == "" || m.port == 0 || seen[m] {
			continue // "." is "no service here" (RFC 2782); a repeat adds nothing
		}
		seen[m] = true
		addrs, err := d.lookup(ctx, s.Target)
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			gone = append(gone, m.target)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dns: SRV %s: target %s: %w", d.name, m.target, err)
		}
		if len(addrs) == 0 {
			gone = append(gone, m.target)
			continue
		}
		nodes = append(nodes, pgxroute.Node{
			Name:       net.JoinHostPort(m.target, strconv.Itoa(int(m.port))),
			ConnString: d.tmpl.With(addrs, m.port),
		})
	}
	if len(nodes) == 0 {
		if len(gone) > 0 {
			return nil, fmt.Errorf("%w: dns: SRV %s: no target has an address (%s)", ErrNoMembers, d.name, strings.Join(gone, ", "))
		}
		return nil, fmt.Errorf("%w: dns: SRV %s: no target", ErrNoMembers, d.name)
	}
	slices.SortFunc(nodes, func(a, b pgxroute.Node) int { return strings.Compare(a.Name, b.Name) })
	return nodes, nil
}

// lookup returns the addresses of host (A and AAAA), sorted, without
// repeats: IPv4 first.
func (d *Discoverer) lookup(ctx context.Context, host string) ([]string, error) {
	ips, err := d.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	as := make([]netip.Addr, len(ips))
	for i, ip := range ips {
		as[i] = ip.Unmap()
	}
	slices.SortFunc(as, netip.Addr.Compare)
	as = slices.Compact(as)
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out, nil
}
