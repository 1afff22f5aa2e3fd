-- Traces across the wait (issue 17): the W3C trace context (canonical traceparent and
-- tracestate, validated before they are written) a caller gave at park (the wait's), the
-- execution's current one (given at create, or at its latest park that gave one), and the one a
-- callback carries on (the delivery's, copied when its transition writes it, so a retry after a
-- restart still sends it).
ALTER TABLE executions ADD COLUMN trace_parent TEXT;
ALTER TABLE executions ADD COLUMN trace_state TEXT;
ALTER TABLE waits ADD COLUMN trace_parent TEXT;
ALTER TABLE waits ADD COLUMN trace_state TEXT;
ALTER TABLE deliveries ADD COLUMN trace_parent TEXT;
ALTER TABLE deliveries ADD COLUMN trace_state TEXT;
