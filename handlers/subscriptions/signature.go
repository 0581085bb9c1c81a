package subscriptions

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader is the header that carries a delivery's signature:
//
//	Memledger-Signature: t=1764584400,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//
// t is the time of signing in Unix seconds and v1 the hex HMAC-SHA256, keyed with the
// subscription's secret, of t, a full stop and the body as sent: "1764584400.{...}". A
// receiver computes the same HMAC over the body it read, compares it in constant time, and
// refuses a t too far from its clock, so that a recorded delivery cannot be replayed later.
const SignatureHeader = "Memledger-Signature"

// Headers of a delivery besides the signature.
const (
	// EventIDHeader holds the event's id: deliveries are at least once, and a receiver
	// de-duplicates by it.
	EventIDHeader      = "Memledger-Event-Id"
	EventTypeHeader    = "Memledger-Event-Type"
	SeqHeader          = "Memledger-Seq"
	SubscriptionHeader = "Memledger-Subscription"
	AttemptHeader      = "Memledger-Delivery-Attempt"
)

// DefaultTolerance is how far from the receiver's clock Verify accepts a signature's time.
const DefaultTolerance = 5 * time.Minute

// Sign returns the value of the signature header for body, signed at t with secret.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte("."))
	h.Write(body)
	return h.Sum(nil)
}

// Errors of Verify.
var (
	ErrSignatureMalformed = errors.New("signature header malformed")
	ErrSignatureMismatch  = errors.New("signature does not match the body")
	ErrSignatureExpired   = errors.New("signature time outside the tolerance")
)

// Verify checks a signature header against body and secret, and that its time is within
// tolerance of now: what a receiver does with each delivery.
func Verify(secret, body []byte, header string, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: %q", ErrSignatureMalformed, part)
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil {
				return fmt.Errorf("%w: v1 is not hex", ErrSignatureMalformed)
			}
			sigs = append(sigs, sig)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: want t=<unix seconds>,v1=<hex>", ErrSignatureMalformed)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed at %s, %s from now", ErrSignatureExpired, time.Unix(unix, 0).UTC().Format(time.RFC3339), d.Round(time.Second))
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrSignatureMismatch
}
