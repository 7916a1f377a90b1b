package replica

// LeadChecker is optionally implemented by a Role whose own state can
// forbid it to lead although the persisted in-sync set names it: CanLead
// returns why (nil: it may stand). The broker refuses when it has no epoch
// history, i.e. its data directory is new or was wiped since the in-sync
// set vouched for it; leading then would lose every acknowledged message.
type LeadChecker interface {
	CanLead() error
}
