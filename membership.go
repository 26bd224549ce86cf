package pgxroute

import (
	"context"
	"errors"
)

// SetGroup replaces the nodes of bind group group while the pool runs.
func (p *RoutedPool) SetGroup(ctx context.Context, group string, nodes []Node) error {
	return errors.New("pgxroute: SetGroup: not built yet")
}
