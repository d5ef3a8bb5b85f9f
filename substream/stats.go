package substream

// Stats are the plugin's counts on the server.
type Stats struct {
	// Streams is the number of streams open on every connection.
	Streams int
}

// Stats returns the plugin's counts, for metrics. It visits every
// connection: call it at a scrape, not per message.
func (ss *Substream) Stats() Stats {
	var st Stats
	ss.sets.Range(func(_, v any) bool {
		s := v.(*set)
		s.mu.Lock()
		st.Streams += len(s.byName)
		s.mu.Unlock()
		return true
	})
	return st
}
