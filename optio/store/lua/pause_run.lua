-- Pause the active run: the tick reserves nothing more, and workers start no more of its jobs
-- (a message they get is parked, a message they run is parked at their next count). Jobs
-- already running finish and are counted.
-- KEYS[1..7] the run's keys (see _prelude.lua)   KEYS[8] active run id
-- KEYS[9] current (watched) run id
-- ARGV[1] run id   ARGV[2] now ms ('' = Redis clock)
-- Returns {1} when paused, else {0, status} (the run is not running: ended or paused already).
if redis.call('GET', KEYS[8]) ~= ARGV[1] then
  return {0, 'not_running'}
end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then
  return {0, status}
end
redis.call('HSET', KEYS[1], 'status', 'paused', 'pausedAt', now_ms(ARGV[2]),
  'rateEnqueued', 0, 'heldBack', '0')
publish_state(KEYS[1], KEYS[9], ARGV[1])
return {1}
