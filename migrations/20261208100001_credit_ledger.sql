-- The credit ledger (issue 15) lives in the events table as the `credit_account` aggregate.
-- Two partial indexes; each covers only its own rows, so other appends pay for the predicate
-- alone.

-- At most one reservation per LLM call and account, ever. The aggregate forgets settled
-- reservations (its state stays as small as the calls in flight), so a reservation asked again
-- for a key settled long ago is refused here, in the append itself; the application then
-- answers with the first reservation instead of holding the credits twice.
CREATE UNIQUE INDEX credit_reservation_keys ON events (aggregate_id, (payload ->> 'llm_call'))
    WHERE aggregate_type = 'credit_account' AND event_type = 'credit_account.reserved';

-- Which account bought through a Stripe PaymentIntent: a `charge.refunded` event names only
-- the charge and its PaymentIntent.
CREATE INDEX credit_purchases_by_payment_intent ON events (((payload -> 'source') ->> 'payment_intent'))
    WHERE aggregate_type = 'credit_account' AND event_type = 'credit_account.granted';
