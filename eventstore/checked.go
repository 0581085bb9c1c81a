package eventstore

// The log check at start reads the stream's positions back only past the position up to which
// an earlier run read them (see Checked); the older part is read again in the background.

// SetChecked records that every position of the log up to seq was read back whole: the log
// check's result, or what an earlier run recorded. Follows raise it from there (see Checked).
func (s *Store) SetChecked(seq uint64) { s.checked.Store(seq) }

// Checked is the position up to which every event of the log has been read back whole (its
// message delivered by the server, which checks each message's checksum): the position
// SetChecked gave, raised by every Follow that started at or before the position after it
// and has delivered each position since (Follow stops at a position it is not delivered,
// unless an operator accepted it as lost). A Follow reads what the server holds at that
// moment, so a later start checks the positions up to Checked again (in the background).
func (s *Store) Checked() uint64 { return s.checked.Load() }

// cover raises Checked to seq for a Follow that started at from and has delivered every
// position from there to seq.
func (s *Store) cover(from, seq uint64) {
	for {
		c := s.checked.Load()
		if c+1 < from || seq <= c {
			return
		}
		if s.checked.CompareAndSwap(c, seq) {
			return
		}
	}
}
