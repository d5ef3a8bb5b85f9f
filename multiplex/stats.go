package multiplex

// Stats are the plugin's counts on the server.
type Stats struct {
	// Channels is the number of channels declared with Channel.
	Channels int
	// Subscriptions is the number of channels open on every connection
	// (a connection's subscriptions to a channel, each a *Spark).
	Subscriptions int
}

// Stats returns the plugin's counts, for metrics.
func (mx *Multiplex) Stats() Stats {
	mx.mu.RLock()
	chans := make([]*Channel, 0, len(mx.channels))
	for _, ch := range mx.channels {
		chans = append(chans, ch)
	}
	mx.mu.RUnlock()
	st := Stats{Channels: len(chans)}
	for _, ch := range chans {
		st.Subscriptions += ch.Count()
	}
	return st
}
