package eventstore

import (
	"errors"
	"sync"
	"time"

	"github.com/memledger/memledger/domain"
)

// appendFailures follows the appends the log refuses for want of storage or of an answer: the
// service is degraded while they fail, and resumes with the next append that succeeds.
type appendFailures struct {
	mu      sync.Mutex
	hook    func() error
	failure error
	since   time.Time
	// count counts the times appends began to fail; first began the last of them.
	count uint64
	first error
}

// SetAppendHook makes every append call fn first: an error it returns is the append's, mapped
// as the log's own errors are (an error wrapping syscall.ENOSPC is the disk-full answer,
// domain.ErrInsufficientStorage). Tests inject a full disk with it; nil removes it.
func (s *Store) SetAppendHook(fn func() error) {
	s.appends.mu.Lock()
	defer s.appends.mu.Unlock()
	s.appends.hook = fn
}

func (s *Store) appendHook() error {
	s.appends.mu.Lock()
	hook := s.appends.hook
	s.appends.mu.Unlock()
	if hook == nil {
		return nil
	}
	return hook()
}

// AppendFailure is why the log refused the last append for want of storage or of an answer,
// and since when appends fail; nil once an append succeeds again.
func (s *Store) AppendFailure() (error, time.Time) {
	s.appends.mu.Lock()
	defer s.appends.mu.Unlock()
	return s.appends.failure, s.appends.since
}

// AppendFailures counts the times appends began to fail since the store opened, with the
// first error and the start of the last of those times: a watcher that looks now and then
// misses none, however short.
func (s *Store) AppendFailures() (count uint64, first error, since time.Time) {
	s.appends.mu.Lock()
	defer s.appends.mu.Unlock()
	return s.appends.count, s.appends.first, s.appends.since
}

// noteAppend records the outcome of an append: err nil, or the mapped error it failed with.
// Only a failure of the log itself counts; a refused command (a conflict, too large) does not.
func (s *Store) noteAppend(err error) {
	if err != nil && !errors.Is(err, domain.ErrInsufficientStorage) && !errors.Is(err, domain.ErrUnavailable) {
		return
	}
	s.appends.mu.Lock()
	defer s.appends.mu.Unlock()
	switch {
	case err == nil && s.appends.failure != nil:
		s.Logger.Info("the log stores appends again", "failed_since", s.appends.since, "err", s.appends.failure)
		s.appends.failure = nil
	case err != nil && s.appends.failure == nil:
		s.Logger.Error("the log refused an append; writes fail until it stores them again", "err", err)
		s.appends.failure, s.appends.since, s.appends.first = err, time.Now(), err
		s.appends.count++
	case err != nil:
		s.appends.failure = err
	}
}
