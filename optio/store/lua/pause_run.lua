-- Pause the active run: the tick reserves nothing more, and workers start no more of its jobs
-- (a message they get is parked, a message they run is parked at their next count). Jobs
-- already running finish and are counted.
-- Keys: reads active_key, current_key; writes run_key.
-- ARGV[1] run id
-- ARGV[2] now ms ('' = Redis clock)
-- Returns {1} when paused (and publishes the state), else {0, status} (the run is not running:
-- ended or paused already; 'not_running' when it is not the active run).
if not is_active(active_key, ARGV[1]) then
  return {0, 'not_running'}
end
local status = redis.call('HGET', run_key, 'status')
if status ~= 'running' then
  return {0, status}
end
redis.call('HSET', run_key, 'status', 'paused', 'pausedAt', now_ms(ARGV[2]),
  'rateEnqueued', 0, 'heldBack', '0')
publish_state(run_key, current_key, ARGV[1])
return {1}
