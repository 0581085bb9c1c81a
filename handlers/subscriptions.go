package handlers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/subscriptions"
	"github.com/prometheus/client_golang/prometheus"
)

// ActorSubscriptions is the default actor of the subscription admin writes.
const ActorSubscriptions = "api-http"

// subscriptionView is a subscription as the API shows it: its state from the log (never its
// secret) and its delivery as this process sees it.
type subscriptionView struct {
	domain.Subscription
	Delivery subscriptions.Status `json:"delivery"`
	// Secret is the secret memledger made, shown once in the answer to the registration.
	Secret string `json:"secret,omitempty"`
}

type registerSubscriptionRequest struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Description string   `json:"description"`
	Subjects    []string `json:"subjects"`
	Types       []string `json:"types"`
	From        string   `json:"from"`
	Secret      string   `json:"secret"`
	Note        string   `json:"note"`
}

func (s *Server) view(r *http.Request, sub domain.Subscription) subscriptionView {
	v := subscriptionView{Subscription: sub}
	if s.Subscriptions != nil {
		v.Delivery = s.Subscriptions.Status(r.Context(), sub)
	}
	return v
}

// writeSubscription answers subscription id as the projections hold it now.
func (s *Server) writeSubscription(w http.ResponseWriter, r *http.Request, id string, status int, secret string) {
	sub, err := s.DB.Subscription(id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v := s.view(r, sub)
	v.Secret = secret
	writeJSON(w, status, v)
}

func (s *Server) registerSubscription(w http.ResponseWriter, r *http.Request) {
	var q registerSubscriptionRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := plainCaller(r, ActorSubscriptions)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	from := domain.Position{Kind: domain.PositionNow}
	if q.From != "" {
		if from, err = domain.ParsePosition("from", q.From); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	made := ""
	if q.Secret == "" {
		raw := make([]byte, 32)
		rand.Read(raw)
		made = "whsec_" + base64.RawURLEncoding.EncodeToString(raw)
		q.Secret = made
	}
	res, err := s.Ledger.RegisterSubscription(r.Context(), c, q.Note, domain.RegisterSubscription{ID: q.ID, URL: q.URL,
		Description: q.Description, Subjects: q.Subjects, Types: q.Types, From: from}, []byte(q.Secret), s.Keyring)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reconcileSubscriptions(r)
	w.Header().Set("Location", "/admin/subscriptions/"+res.ID)
	s.writeSubscription(w, r, res.ID, http.StatusCreated, made)
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	all := false
	if v := r.URL.Query().Get("include_removed"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.fail(w, r, domain.Invalid("include_removed", "must be true or false, got %q", v))
			return
		}
		all = b
	}
	subs, err := s.DB.Subscriptions()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []subscriptionView{}
	for _, sub := range subs {
		if sub.Status == domain.StatusSubscriptionRemoved && !all {
			continue
		}
		out = append(out, s.view(r, sub))
	}
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": out})
}

func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request) {
	s.writeSubscription(w, r, r.PathValue("id"), http.StatusOK, "")
}

func (s *Server) subscriptionAction(a domain.SubscriptionAction) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var q subscriptionNoteRequest
		if err := decodeBody(w, r, &q, true); err != nil {
			s.fail(w, r, err)
			return
		}
		c, err := plainCaller(r, ActorSubscriptions)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		res, err := s.Ledger.SubscriptionAction(r.Context(), c, q.Note, r.PathValue("id"), a)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.reconcileSubscriptions(r)
		s.writeSubscription(w, r, res.ID, http.StatusOK, "")
	}
}

type subscriptionNoteRequest struct {
	Note string `json:"note"`
}

type resetSubscriptionRequest struct {
	From string `json:"from"`
	Note string `json:"note"`
}

func (s *Server) resetSubscription(w http.ResponseWriter, r *http.Request) {
	var q resetSubscriptionRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	if q.From == "" {
		s.fail(w, r, domain.Invalid("from", "is required: beginning, now, a sequence or an RFC 3339 time"))
		return
	}
	from, err := domain.ParsePosition("from", q.From)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := plainCaller(r, ActorSubscriptions)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.Ledger.ResetSubscription(r.Context(), c, q.Note, r.PathValue("id"), from)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reconcileSubscriptions(r)
	s.writeSubscription(w, r, res.ID, http.StatusOK, "")
}

// subscriptionStatuses is the delivery of every subscription not removed, by id.
func (s *Server) subscriptionStatuses(ctx context.Context) map[string]subscriptions.Status {
	if s.Subscriptions == nil {
		return nil
	}
	subs, err := s.DB.Subscriptions()
	if err != nil {
		return nil
	}
	out := map[string]subscriptions.Status{}
	for _, sub := range subs {
		if sub.Status != domain.StatusSubscriptionRemoved {
			out[sub.ID] = s.Subscriptions.Status(ctx, sub)
		}
	}
	return out
}

var (
	descSubLag       = prometheus.NewDesc("memledger_subscription_lag", "Events matching a subscription's subjects that it has not delivered yet.", []string{"subscription"}, nil)
	descSubPosition  = prometheus.NewDesc("memledger_subscription_position", "Log position of the last event a subscription delivered (or skipped).", []string{"subscription"}, nil)
	descSubDelivered = prometheus.NewDesc("memledger_subscription_delivered_total", "Events a subscription delivered since the process started.", []string{"subscription"}, nil)
	descSubFailing   = prometheus.NewDesc("memledger_subscription_failing", "1 while a subscription's receiver is failing (its next event is being retried) or it cannot run, else 0.", []string{"subscription"}, nil)
)

// collectSubscriptions sends the subscriptions' metrics.
func (s *Server) collectSubscriptions(ctx context.Context, ch chan<- prometheus.Metric) {
	for id, st := range s.subscriptionStatuses(ctx) {
		failing := 0.0
		if st.Failing || st.Error != "" {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(descSubFailing, prometheus.GaugeValue, failing, id)
		ch <- prometheus.MustNewConstMetric(descSubDelivered, prometheus.CounterValue, float64(st.Delivered), id)
		if st.Error == "" {
			ch <- prometheus.MustNewConstMetric(descSubLag, prometheus.GaugeValue, float64(st.Lag), id)
			ch <- prometheus.MustNewConstMetric(descSubPosition, prometheus.GaugeValue, float64(st.Position), id)
		}
	}
}

// reconcileSubscriptions brings the deliveries to a subscription write just made, so that the
// answer shows them; a failure is the manager's to retry, and the write stands.
func (s *Server) reconcileSubscriptions(r *http.Request) {
	if s.Subscriptions == nil {
		return
	}
	if err := s.Subscriptions.Reconcile(r.Context()); err != nil {
		s.Logger.Warn("subscriptions: reconcile after a write failed; the manager tries again", "err", err)
	}
}
