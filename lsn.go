package pgxroute

import "github.com/pgxroute/pgxroute/internal/pgtext"

// parseLSN parses a pg_lsn's text form "16/B374D848".
func parseLSN(s string) (uint64, error) { return pgtext.ParseLSN(s) }

// formatLSN formats a WAL position as pg_lsn's text form.
func formatLSN(lsn uint64) string { return pgtext.FormatLSN(lsn) }

// redactedError returns err's message without passwords.
func redactedError(err error) string {
	if err == nil {
		return ""
	}
	return pgtext.Redact(err.Error())
}
