package routingtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoServer is returned when no PostgreSQL server binaries (initdb, postgres,
// pg_basebackup) can be found. Its message says what to install.
var ErrNoServer = errors.New("routingtest: PostgreSQL server binaries not found (install them: apt-get install -y postgresql, brew install postgresql, or set PGXROUTE_PG_BIN to the folder holding initdb and postgres)")

// ErrNoUnprivilegedUser is returned when the process runs as root and no
// unprivileged account exists to run the servers as (PostgreSQL refuses root).
var ErrNoUnprivilegedUser = errors.New("routingtest: running as root and PostgreSQL refuses to run as root; create an account for it (useradd --system --create-home postgres) or name one in ClusterOptions.User or PGXROUTE_PG_USER")

// serverBinaries are the programs the harness needs in one folder.
var serverBinaries = []string{"initdb", "postgres", "pg_basebackup"}

// FindBinDir returns the folder holding PostgreSQL's server binaries. It
// looks, in order, at explicit (when not empty), the PGXROUTE_PG_BIN
// environment variable, `pg_config --bindir`, the PATH, and the newest
// /usr/lib/postgresql/*/bin. The error wraps ErrNoServer.
func FindBinDir(explicit string) (string, error) {
	if explicit != "" {
		return checkBinDir(explicit, "ClusterOptions.BinDir")
	}
	if env := os.Getenv("PGXROUTE_PG_BIN"); env != "" {
		return checkBinDir(env, "PGXROUTE_PG_BIN")
	}
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.Command(pgConfig, "--bindir").Output(); err == nil {
			if dir, err := checkBinDir(strings.TrimSpace(string(out)), "pg_config --bindir"); err == nil {
				return dir, nil
			}
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if dir, err := checkBinDir(filepath.Dir(p), "PATH"); err == nil {
			return dir, nil
		}
	}
	if dir := newestDebianBinDir(); dir != "" {
		return dir, nil
	}
	return "", ErrNoServer
}

func checkBinDir(dir, source string) (string, error) {
	for _, name := range serverBinaries {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("%w: %s names %q, which has no %s", ErrNoServer, source, dir, name)
		}
	}
	return dir, nil
}

// newestDebianBinDir returns the /usr/lib/postgresql/N/bin with the highest N
// that holds the server binaries, or "".
func newestDebianBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, dir := range dirs {
		if _, err := checkBinDir(dir, "/usr/lib/postgresql"); err == nil {
			return dir
		}
	}
	return ""
}

// serverAccount returns the credential to run the servers with: nil when the
// process is not root, else the unprivileged account's uid and gid.
func serverAccount(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if name == "" {
		name = os.Getenv("PGXROUTE_PG_USER")
	}
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoUnprivilegedUser, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		return nil, fmt.Errorf("%w: account %q is not usable (uid %s)", ErrNoUnprivilegedUser, name, u.Uid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}
