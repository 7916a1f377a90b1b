package broker

// ServedOnWake is how many long-poll gets were served on their park
// goroutine when their data arrived (getJob.serveWoken), not requeued to
// the event loop.
func (b *Broker) ServedOnWake() uint64 { return b.waiters.servedWoken.Load() }

// RequeuedOnWake is how many woken long-poll gets went back through the
// event loop instead.
func (b *Broker) RequeuedOnWake() uint64 { return b.waiters.requeued.Load() }
