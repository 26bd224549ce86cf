package pgxroute

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// parseLSN parses a pg_lsn's text form "16/B374D848".
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("pgxroute: bad WAL position %q", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("pgxroute: bad WAL position %q", s)
	}
	return h<<32 | l, nil
}

// formatLSN formats a WAL position as pg_lsn's text form.
func formatLSN(lsn uint64) string {
	return fmt.Sprintf("%X/%X", lsn>>32, uint32(lsn))
}

var (
	urlPassword = regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]*@`)
	kvPassword  = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)`)
)

// redact hides the passwords of connection strings in s.
func redact(s string) string {
	s = urlPassword.ReplaceAllString(s, "${1}xxxxx@")
	return kvPassword.ReplaceAllString(s, "${1}xxxxx")
}

// redactedError returns err's message without passwords.
func redactedError(err error) string {
	if err == nil {
		return ""
	}
	return redact(err.Error())
}
