package stdlib

import "testing"

func TestDropsStatements(t *testing.T) {
	tests := []struct {
		sql  string
		want bool
	}{
		{"DISCARD ALL", true},
		{"  discard   all ; ", true},
		{"DEALLOCATE ALL", true},
		{"deallocate prepare all", true},
		{"DISCARD TEMP", false},
		{"DEALLOCATE stmt1", false},
		{"DELETE FROM t", false},
		{"SELECT 1", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := dropsStatements(tt.sql); got != tt.want {
			t.Errorf("dropsStatements(%q) = %v, want %v", tt.sql, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { dropsStatements("UPDATE t SET a = 1 WHERE id = $1") }); n != 0 {
		t.Errorf("%v allocations for an ordinary statement, want 0", n)
	}
}
