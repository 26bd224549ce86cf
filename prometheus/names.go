package prometheus

import "github.com/pgxroute/pgxroute"

// ReasonName returns the value of the reason label for r ("read_no_scope",
// "misroute"); "unknown" for a value that is not a
// reason. It is pgxroute.Reason.Name.
func ReasonName(r pgxroute.Reason) string {
	return r.Name()
}
