package pgxroute

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestStatusPageMembershipParts renders the page's template over documents
// of each membership and discovery case (the parts a real pool shows only
// for moments: a node draining, discovery failing), table-driven: each
// must show its parts, and not the others'; names and errors are text.
func TestStatusPageMembershipParts(t *testing.T) {
	now := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(-d); return &v }
	base := func() *statusDoc {
		return &statusDoc{Time: now, Primary: "primary", SplitBrain: []string{}, StalePrimaries: []string{},
			Draining: []statusDraining{}, Members: []statusMember{{Name: "primary", Role: "primary", State: "up", Primary: true}}}
	}
	tests := []struct {
		name       string
		edit       func(*statusDoc)
		want, none []string
	}{
		{
			name: "nothing changed, no discovery",
			edit: func(*statusDoc) {},
			want: []string{`id="membership">added <strong>0</strong> · removed <strong>0</strong> · drained <strong>0</strong> (cut short by DrainTimeout <strong>0</strong>) · draining now <strong>0</strong></p>`},
			none: []string{`id="draining"`, `id="discovery"`, `id="discovery-failing"`, "last change", "no reads"},
		},
		{
			name: "a node draining, another joining",
			edit: func(d *statusDoc) {
				d.Membership = statusMembership{Added: 1, Removed: 1, LastChange: at(3 * time.Second)}
				d.Draining = []statusDraining{{Name: "<b>old</b>", Since: now.Add(-3 * time.Second), InFlight: 8, Acquired: 2}}
				d.Members = append(d.Members, statusMember{Name: "new", Role: "unknown", State: StateJoining.String()})
				d.Groups = []statusGroup{{Name: "read", Nodes: []statusNode{{Name: "backup", Role: "replica", State: "up", NoReads: true}}}}
			},
			want: []string{
				`added <strong>1</strong> · removed <strong>1</strong>`, `draining now <strong>1</strong> · last change 3s ago</p>`,
				`<tr data-draining="&lt;b&gt;old&lt;/b&gt;">`, `<td class="mono">13:59:57.000 <span class="mute">3s ago</span></td>`,
				`<td class="n">8</td>`, `<td class="n">2</td>`, `<span class="st st-joining">joining</span>`,
				`<td>replica <span class="tag">no reads</span></td>`,
			},
			none: []string{`<b>old</b>`, `id="discovery"`},
		},
		{
			name: "discovery failing since its last success",
			edit: func(d *statusDoc) {
				d.Discovery = &statusDiscovery{Calls: 5, Failures: 2, Failing: true, LastError: `patroni: GET http://10.0.0.1:8008/cluster: <refused>`,
					LastErrorAt: at(time.Second), LastSuccessAt: at(90 * time.Second), Members: []string{"m1", "m2"}}
			},
			want: []string{
				`<p class="warn" id="discovery-failing">Discovery is failing (last error 1s ago): the members stay those it gave 1m30s ago.</p>`,
				`<tr data-discovery="failing">`, `<td class="n">5</td>`, `<td class="n">2</td>`, `m1, m2`,
				`patroni: GET http://10.0.0.1:8008/cluster: &lt;refused&gt;`,
			},
			none: []string{`<refused>`, `<tr data-discovery="ok">`},
		},
		{
			name: "discovery failing from the start",
			edit: func(d *statusDoc) {
				d.Discovery = &statusDiscovery{Calls: 2, Failures: 2, Failing: true, LastError: "no REST API answered", LastErrorAt: at(0), Members: []string{}}
			},
			want: []string{`the members stay those it gave never: the configured ones.`, `<span class="mute">never</span>`, `<span class="mute">none yet</span>`},
		},
		{
			name: "discovery ok",
			edit: func(d *statusDoc) {
				d.Discovery = &statusDiscovery{Calls: 9, LastSuccessAt: at(2 * time.Second), Members: []string{"primary", "replica1"}}
			},
			want: []string{`<tr data-discovery="ok">`, `<span class="st st-up">ok</span>`, `<td>2s ago</td>`, `primary, replica1`},
			none: []string{`id="discovery-failing"`},
		},
		{
			name: "membership events",
			edit: func(d *statusDoc) {
				d.Events = []statusEvent{
					{Kind: "node_drained", Node: "old", Detail: "DrainTimeout ran out", At: now},
					{Kind: "node_added", Node: "new", Group: "read", State: "joining", At: now},
					{Kind: "discovery_failed", Err: "dns: SRV _pg._tcp.: timeout", At: now},
				}
				d.EventsTotal = 3
			},
			want: []string{
				`<span class="st ev-node_drained">node_drained</span>`, `<span class="mute">DrainTimeout ran out</span>`,
				`<span class="st ev-node_added">node_added</span>`, `<span class="mute">group: read</span>`,
				`<span class="st ev-discovery_failed">discovery_failed</span>`, `dns: SRV _pg._tcp.: timeout`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := base()
			tt.edit(d)
			var buf bytes.Buffer
			if err := statusPage.Execute(&buf, d); err != nil {
				t.Fatal(err)
			}
			page := buf.String()
			for _, w := range tt.want {
				if !strings.Contains(page, w) {
					t.Errorf("the page lacks %s", w)
				}
			}
			for _, n := range tt.none {
				if strings.Contains(page, n) {
					t.Errorf("the page has %s", n)
				}
			}
			if t.Failed() {
				t.Logf("page:\n%s", page)
			}
		})
	}
}
