-- Placeholder for the delivery-ops branch's migration 0013 (numbers must be contiguous).
-- When delivery-ops is merged, its own 0013 replaces this file: delete this one.
SELECT 1;
