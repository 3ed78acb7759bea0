-- Extend the leases a worker holds, and tell it which it lost.
-- A lease is lost when another delivery or the tick took it (it had expired) or the run ended;
-- the worker stops running that message's jobs. A paused run's leases are renewed: its workers
-- finish the job at hand, then park the rest.
-- Keys: reads run_key, holders_key; writes messages_key.
-- ARGV[1] lease ms
-- ARGV[2] now ms ('' = Redis clock)
-- ARGV[3], ARGV[4], ...: message key, token, message key, token, ...
-- Returns {status, lost message key, ...}: status is the run's ('gone' when unknown).
return renew_held(run_key, holders_key, messages_key, lease_left)
