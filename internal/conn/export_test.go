package conn

// SetNextOpaque sets the next opaque to try (tests of the wrap-around).
func SetNextOpaque(c *Conn, v int32) {
	c.mu.Lock()
	c.pending.next = v
	c.mu.Unlock()
}
