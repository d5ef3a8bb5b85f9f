package rooms

// Stats are the counts of a Rooms, on this node.
type Stats struct {
	// Rooms is the number of rooms with members.
	Rooms int
	// Members is the number of sparks in at least one room.
	Members int
	// Memberships is the number of (room, spark) pairs.
	Memberships int
}

// Stats returns the counts, for metrics. It visits every room: call it at
// a scrape, not per message.
func (r *Rooms) Stats() Stats {
	r.mu.RLock()
	defer r.mu.RUnlock()
	st := Stats{Rooms: len(r.rooms), Members: len(r.of)}
	for _, members := range r.rooms {
		st.Memberships += len(members)
	}
	return st
}
