-- The dispatcher's claim (issue 15) asks, per endpoint, "is anything due?", "what is due, oldest first?" and
-- "how many are in flight?". Answered from one partial index of the open deliveries per endpoint, each is a
-- short range scan, whatever the backlog (a global index made every claim walk every due delivery).
CREATE INDEX webhook_deliveries_open_per_endpoint ON webhook_deliveries (endpoint_id, next_attempt_at, id)
  WHERE status IN ('pending', 'delivering');
