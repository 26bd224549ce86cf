package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/balancer"
	"github.com/pgxroute/pgxroute/internal/pgtext"
)

// fileConfig is the JSON configuration file of explain and check.
type fileConfig struct {
	Primary        string                `json:"primary"`
	Replicas       []fileNode            `json:"replicas"`
	Groups         map[string][]fileNode `json:"groups"`
	DefaultGroup   string                `json:"default_group"`
	ReadGroup      string                `json:"read_group"`
	Strategy       string                `json:"strategy"`
	Stickiness     string                `json:"stickiness"`
	WriteFunctions []string              `json:"write_functions"`
}

// fileNode is one node of a fileConfig.
type fileNode struct {
	Name       string `json:"name"`
	ConnString string `json:"conn_string"`
	Weight     int    `json:"weight"`
}

// defaultConfig is explain's embedded configuration.
var defaultConfig = fileConfig{
	Primary: "postgres://app@primary:5432/app",
	Replicas: []fileNode{
		{Name: "replica-1", ConnString: "postgres://app@replica-1:5432/app"},
		{Name: "replica-2", ConnString: "postgres://app@replica-2:5432/app"},
	},
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// configFlags are the flags that name a deployment: a file, or a primary and
// replicas.
type configFlags struct {
	file     string
	primary  string
	replicas stringList
}

func (c *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.file, "config", "", "JSON configuration `file` (see 'go doc .' in cmd/pgxroute)")
	fs.StringVar(&c.primary, "primary", "", "connection string (`URL`) of the primary, instead of -config")
	fs.Var(&c.replicas, "replica", "connection string (`URL`) of a replica; repeat for each replica")
}

// load returns the configuration the flags name. With none, it returns def
// when it is not nil, else a usage error.
func (c *configFlags) load(def *fileConfig) (fileConfig, string, error) {
	switch {
	case c.file != "" && (c.primary != "" || len(c.replicas) > 0):
		return fileConfig{}, "", usagef("give either -config or -primary/-replica, not both")
	case c.file != "":
		fc, err := readConfigFile(c.file)
		return fc, c.file, err
	case c.primary != "":
		fc := fileConfig{Primary: c.primary}
		for _, r := range c.replicas {
			fc.Replicas = append(fc.Replicas, fileNode{ConnString: r})
		}
		return fc, "flags", nil
	case len(c.replicas) > 0:
		return fileConfig{}, "", usagef("-replica needs -primary")
	case def != nil:
		return *def, "embedded default", nil
	}
	return fileConfig{}, "", usagef("give -config FILE or -primary URL [-replica URL...]")
}

// readConfigFile reads and decodes a configuration file; unknown fields are
// errors, so that a typo does not go unnoticed.
func readConfigFile(path string) (fileConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return fileConfig{}, err
	}
	var fc fileConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return fileConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	return fc, nil
}

// parseStickiness parses "sticky-scope", "off", "read-your-writes" or
// "sticky-for:DURATION" (also "sticky-for(DURATION)", as Stickiness prints).
func parseStickiness(s string) (pgxroute.Stickiness, error) {
	switch v := strings.ToLower(strings.TrimSpace(s)); v {
	case "", "sticky-scope", "sticky", "scope":
		return pgxroute.StickyScope, nil
	case "off", "none", "no":
		return pgxroute.NoStickiness, nil
	case "read-your-writes", "ryw":
		return pgxroute.ReadYourWrites, nil
	default:
		var ds string
		switch {
		case strings.HasPrefix(v, "sticky-for:"):
			ds = strings.TrimPrefix(v, "sticky-for:")
		case strings.HasPrefix(v, "sticky-for(") && strings.HasSuffix(v, ")"):
			ds = strings.TrimSuffix(strings.TrimPrefix(v, "sticky-for("), ")")
		default:
			return 0, fmt.Errorf("unknown stickiness %q (want sticky-scope, off, read-your-writes or sticky-for:DURATION)", s)
		}
		d, err := time.ParseDuration(ds)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("stickiness %q: want a positive duration such as sticky-for:1s", s)
		}
		return pgxroute.StickyFor(d), nil
	}
}

// routerConfig turns a fileConfig into a pgxroute.Config.
func (fc fileConfig) routerConfig() (pgxroute.Config, error) {
	cfg := pgxroute.Config{
		Primary:        fc.Primary,
		DefaultGroup:   fc.DefaultGroup,
		ReadGroup:      fc.ReadGroup,
		WriteFunctions: fc.WriteFunctions,
	}
	if fc.Strategy != "" {
		s, err := balancer.ParseStrategy(fc.Strategy)
		if err != nil {
			return cfg, err
		}
		cfg.Strategy = s
	}
	mode, err := parseStickiness(fc.Stickiness)
	if err != nil {
		return cfg, err
	}
	cfg.Stickiness = mode
	for _, r := range fc.Replicas {
		cfg.Replicas = append(cfg.Replicas, pgxroute.Node{Name: r.Name, ConnString: r.ConnString, Weight: r.Weight})
	}
	if len(fc.Groups) > 0 {
		cfg.Groups = map[string][]pgxroute.Node{}
		for g, nodes := range fc.Groups {
			for _, n := range nodes {
				cfg.Groups[g] = append(cfg.Groups[g], pgxroute.Node{Name: n.Name, ConnString: n.ConnString, Weight: n.Weight})
			}
		}
	}
	return cfg, nil
}

func (fc fileConfig) defaultGroup() string {
	if fc.DefaultGroup != "" {
		return fc.DefaultGroup
	}
	return pgxroute.DefaultGroupName
}

func (fc fileConfig) readGroup() string {
	if fc.ReadGroup != "" {
		return fc.ReadGroup
	}
	return pgxroute.ReadGroupName
}

// member is a node as listed in one group, for check.
type member struct {
	group string
	name  string
	conn  string
}

// members lists the nodes of every group the way pgxroute orders and names
// them: the default group first (the primary at its head), the read group
// (its Groups nodes, then the replicas), then the other groups by name. A
// node without a name is named by its host and port.
func (fc fileConfig) members() []member {
	def, read := fc.defaultGroup(), fc.readGroup()
	byGroup := map[string][]fileNode{}
	for g, nodes := range fc.Groups {
		byGroup[g] = append(byGroup[g], nodes...)
	}
	if fc.Primary != "" {
		byGroup[def] = append([]fileNode{{ConnString: fc.Primary}}, byGroup[def]...)
	}
	byGroup[read] = append(byGroup[read], fc.Replicas...)
	var others []string
	for g := range byGroup {
		if g != def && g != read {
			others = append(others, g)
		}
	}
	slices.Sort(others)
	var out []member
	for _, g := range append([]string{def, read}, others...) {
		for _, n := range byGroup[g] {
			name := n.Name
			if name == "" {
				name = hostPort(n.ConnString)
			}
			out = append(out, member{group: g, name: name, conn: n.ConnString})
		}
	}
	return out
}

// hostPort returns the host and port a connection string names (the first
// of several hosts), or "?" when it does not parse. It never contains the
// password.
func hostPort(conn string) string {
	cfg, err := pgx.ParseConfig(conn)
	if err != nil {
		return "?"
	}
	if strings.HasPrefix(cfg.Host, "/") {
		return cfg.Host + ":" + strconv.Itoa(int(cfg.Port))
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

// redact hides the passwords of connection strings in s.
func redact(s string) string { return pgtext.Redact(s) }
