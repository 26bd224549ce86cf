package pgxroute

// SetFullProbeGap makes every probe p's probers are asked for wait the
// whole minProbeGap (on), as they did before, or only what is left of it
// since the last probe started (off, the default): for the figures that
// compare the two in one process.
func SetFullProbeGap(p *RoutedPool, on bool) { p.fullProbeGap.Store(on) }
