package classify

import (
	"strings"
	"unicode/utf8"
)

// maxIdentLen is PostgreSQL's NAMEDATALEN-1: longer identifiers are
// truncated by the server, so names are compared after the same truncation.
const maxIdentLen = 63

// builtinWriteFunction returns the reason for a built-in function with side
// effects, given its normalized name (unquoted names folded to lower case).
// Built-ins match in any schema: pg_catalog.nextval and app.nextval alike.
func builtinWriteFunction(name []byte) (string, bool) {
	switch string(name) {
	// Sequences. currval and lastval do not write, but they read state
	// that only a nextval of the same session on the primary has set.
	case "nextval":
		return "calls nextval", true
	case "setval":
		return "calls setval", true
	case "currval":
		return "calls currval", true
	case "lastval":
		return "calls lastval", true
	// Advisory locks.
	case "pg_advisory_lock":
		return "calls pg_advisory_lock", true
	case "pg_advisory_lock_shared":
		return "calls pg_advisory_lock_shared", true
	case "pg_advisory_unlock":
		return "calls pg_advisory_unlock", true
	case "pg_advisory_unlock_shared":
		return "calls pg_advisory_unlock_shared", true
	case "pg_advisory_unlock_all":
		return "calls pg_advisory_unlock_all", true
	case "pg_advisory_xact_lock":
		return "calls pg_advisory_xact_lock", true
	case "pg_advisory_xact_lock_shared":
		return "calls pg_advisory_xact_lock_shared", true
	case "pg_try_advisory_lock":
		return "calls pg_try_advisory_lock", true
	case "pg_try_advisory_lock_shared":
		return "calls pg_try_advisory_lock_shared", true
	case "pg_try_advisory_xact_lock":
		return "calls pg_try_advisory_xact_lock", true
	case "pg_try_advisory_xact_lock_shared":
		return "calls pg_try_advisory_xact_lock_shared", true
	// Session and transaction state, notifications.
	case "set_config":
		return "calls set_config", true
	case "pg_notify":
		return "calls pg_notify", true
	case "txid_current":
		return "calls txid_current", true
	case "pg_current_xact_id":
		return "calls pg_current_xact_id", true
	// Large objects (lo_* is also matched as a prefix below).
	case "loread":
		return "calls loread", true
	case "lowrite":
		return "calls lowrite", true
	// dblink and adminpack.
	case "dblink_exec":
		return "calls dblink_exec", true
	case "pg_file_write":
		return "calls pg_file_write", true
	case "pg_file_rename":
		return "calls pg_file_rename", true
	case "pg_file_unlink":
		return "calls pg_file_unlink", true
	// Server administration.
	case "pg_terminate_backend":
		return "calls pg_terminate_backend", true
	case "pg_cancel_backend":
		return "calls pg_cancel_backend", true
	case "pg_reload_conf":
		return "calls pg_reload_conf", true
	case "pg_rotate_logfile":
		return "calls pg_rotate_logfile", true
	case "pg_switch_wal":
		return "calls pg_switch_wal", true
	case "pg_switch_xlog":
		return "calls pg_switch_xlog", true
	case "pg_promote":
		return "calls pg_promote", true
	case "pg_create_restore_point":
		return "calls pg_create_restore_point", true
	case "pg_backup_start":
		return "calls pg_backup_start", true
	case "pg_backup_stop":
		return "calls pg_backup_stop", true
	case "pg_start_backup":
		return "calls pg_start_backup", true
	case "pg_stop_backup":
		return "calls pg_stop_backup", true
	case "pg_wal_replay_pause":
		return "calls pg_wal_replay_pause", true
	case "pg_wal_replay_resume":
		return "calls pg_wal_replay_resume", true
	case "pg_log_backend_memory_contexts":
		return "calls pg_log_backend_memory_contexts", true
	case "pg_import_system_collations":
		return "calls pg_import_system_collations", true
	case "pg_stat_statements_reset":
		return "calls pg_stat_statements_reset", true
	// Replication slots and logical decoding.
	case "pg_logical_emit_message":
		return "calls pg_logical_emit_message", true
	case "pg_logical_slot_get_changes":
		return "calls pg_logical_slot_get_changes", true
	case "pg_logical_slot_get_binary_changes":
		return "calls pg_logical_slot_get_binary_changes", true
	case "pg_replication_slot_advance":
		return "calls pg_replication_slot_advance", true
	case "pg_create_physical_replication_slot":
		return "calls pg_create_physical_replication_slot", true
	case "pg_create_logical_replication_slot":
		return "calls pg_create_logical_replication_slot", true
	case "pg_copy_physical_replication_slot":
		return "calls pg_copy_physical_replication_slot", true
	case "pg_copy_logical_replication_slot":
		return "calls pg_copy_logical_replication_slot", true
	case "pg_drop_replication_slot":
		return "calls pg_drop_replication_slot", true
	}
	// Families, matched by prefix so that new members are covered too.
	switch {
	case hasPrefix(name, "pg_advisory_"):
		return "calls pg_advisory_*", true
	case hasPrefix(name, "pg_try_advisory_"):
		return "calls pg_try_advisory_*", true
	case hasPrefix(name, "lo_"):
		return "calls lo_*", true
	case hasPrefix(name, "pg_stat_reset"):
		return "calls pg_stat_reset*", true
	case hasPrefix(name, "pg_replication_origin_"):
		return "calls pg_replication_origin_*", true
	case hasPrefix(name, "binary_upgrade_"):
		return "calls binary_upgrade_*", true
	}
	return "", false
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// builtinFirst reports whether a built-in write function can start with
// byte c (a fast reject for the common function calls).
func builtinFirst(c byte) bool {
	switch c {
	case 'b', 'c', 'd', 'l', 'n', 'p', 's', 't':
		return true
	}
	return false
}

// userFunc is one name of Options.WriteFunctions.
type userFunc struct {
	reason    string
	anySchema bool     // listed without a schema: matches in every schema
	schemas   []string // else the schemas it was listed with
}

// normName copies the name of token t into buf as PostgreSQL resolves it:
// unquoted identifiers folded to ASCII lower case, quoted identifiers by
// their exact text with doubled quotes undoubled, truncated to 63 bytes.
func normName(src string, t token, buf *[maxIdentLen + 1]byte) []byte {
	s := src[t.start:t.end]
	n := 0
	if t.kind == tIdent {
		for i := 0; i < len(s) && n < len(buf); i++ {
			c := s[i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[n] = c
			n++
		}
	} else {
		for i := 0; i < len(s) && n < len(buf); i++ {
			buf[n] = s[i]
			n++
			if s[i] == '"' {
				i++ // skip the second quote of a doubled quote
			}
		}
	}
	return clipName(buf[:n])
}

// clipName truncates a name to maxIdentLen bytes without splitting a UTF-8
// sequence, like the server's truncate_identifier.
func clipName(b []byte) []byte {
	if len(b) <= maxIdentLen {
		return b
	}
	n := maxIdentLen
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return b[:n]
}

// lookupFunc reports whether the function name, optionally qualified by
// schema, is a write function of these rules. Names are normalized.
func (r *rules) lookupFunc(schema, name []byte, qualified bool) (string, bool) {
	if len(name) == 0 {
		return "", false
	}
	if builtinFirst(name[0]) {
		if reason, ok := builtinWriteFunction(name); ok {
			return reason, true
		}
	}
	if r.user == nil {
		return "", false
	}
	f := r.user[string(name)]
	if f == nil {
		return "", false
	}
	if f.anySchema || !qualified {
		return f.reason, true
	}
	for _, s := range f.schemas {
		if string(schema) == s {
			return f.reason, true
		}
	}
	return "", false
}

// parseFuncName splits an Options.WriteFunctions entry into its normalized
// schema and name. It accepts `fn`, `schema.fn`, quoted parts (`"Fn"`,
// `app."Fn"`), surrounding blanks and a trailing argument list (`fn(int)`).
func parseFuncName(entry string) (schema, name string, ok bool) {
	s := strings.TrimSpace(entry)
	if i := strings.IndexByte(s, '('); i >= 0 && !strings.Contains(s[:i], `"`) {
		s = strings.TrimSpace(s[:i])
	}
	l := lexer{src: s}
	var parts []string
	wantName := true
	for {
		t := l.next()
		if l.err != "" {
			return "", "", false
		}
		if t.kind == tEOF {
			break
		}
		if t.isOp('(') {
			break // argument list after a quoted name
		}
		if wantName {
			if t.kind != tIdent && t.kind != tQIdent {
				return "", "", false
			}
			var buf [maxIdentLen + 1]byte
			parts = append(parts, string(normName(s, t, &buf)))
			wantName = false
			continue
		}
		if !t.isOp('.') {
			return "", "", false
		}
		wantName = true
	}
	if wantName || len(parts) == 0 || len(parts) > 3 {
		return "", "", false
	}
	name = parts[len(parts)-1]
	if len(parts) >= 2 {
		schema = parts[len(parts)-2]
	}
	return schema, name, name != ""
}
