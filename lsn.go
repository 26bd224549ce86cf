package pgxroute

import "github.com/pgxroute/pgxroute/internal/pgtext"

// redactedError returns err's message without passwords.
func redactedError(err error) string {
	if err == nil {
		return ""
	}
	return pgtext.Redact(err.Error())
}
