-- Start a run, beside the runs already active; it becomes the current run (the one clients
-- are shown by default).
-- Keys (run_key is the new run's): writes active_key (the run added), current_key (set to the
-- run), run_key (every field of a new run), runs_key (the history); items_key, the items the
-- web process wrote before (ARGV[6] 1), stops expiring.
-- ARGV[1] run id
-- ARGV[2] x, jobs
-- ARGV[3] y, jobs/min
-- ARGV[4] now ms ('' = Redis clock)
-- ARGV[5] 1 when a completion webhook is configured (delivered when the run ends), else 0
-- ARGV[6] 1 when the run has items (its x is their number), else 0
-- ARGV[7] weight: the run's share of a binding ceiling against the other runs' weights
-- ARGV[8] most jobs of the run outstanding at once (maxInFlight; 0 = no bound)
-- ARGV[9] deadline ms ('' = none: the run goes at y; else y is derived every tick)
-- Returns {1, run id} when started (and publishes the state), {0, run id} when a run of that
-- id exists already.
if redis.call('EXISTS', run_key) == 1 then
  return {0, ARGV[1]}
end
local now = now_ms(ARGV[4])
activate(active_key, ARGV[1], now)
redis.call('SET', current_key, ARGV[1])
redis.call('HSET', run_key,
  'runId', ARGV[1], 'status', 'running',
  'xTotal', ARGV[2], 'yMinute', ARGV[3],
  'reserved', 0, 'enqueued', 0, 'processed', 0, 'failed', 0, 'leasedJobs', 0,
  'startedAt', now,
  -- job k is due at startedAt + k*60/y: one job (job 0) is due at the anchor time
  'anchorMs', now, 'anchorCount', 1,
  -- rateNow: the effective rate, y until a job throttles (throttle_job.lua)
  'rateNow', ARGV[3], 'rateEnqueued', 0, 'rateAt', now, 'rateCount', 0,
  'throttled', 0, 'throttleAt', 0, 'raisedAt', 0, 'throttleNext', 0,
  'heldBack', '0', 'heldAt', 0, 'seq', 0, 'pausedMs', 0, 'retried', 0, 'hook', ARGV[5],
  'weight', ARGV[7], 'maxInFlight', ARGV[8])
if ARGV[9] ~= '' then
  redis.call('HSET', run_key, 'deadline', ARGV[9])
end
if ARGV[6] == '1' then
  redis.call('HSET', run_key, 'items', '1')
  redis.call('PERSIST', items_key)
end
redis.call('ZADD', runs_key, now, ARGV[1])
publish_state(run_key, current_key, ARGV[1])
return {1, ARGV[1]}
