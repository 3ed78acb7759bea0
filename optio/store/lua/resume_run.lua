-- Resume the paused active run at rate y from now: the schedule moves by the paused time (no
-- catch-up burst), which is added to pausedMs; the next tick sends the parked messages.
-- KEYS[1..7] the run's keys (see _prelude.lua)   KEYS[8] active run id
-- KEYS[9] current (watched) run id
-- ARGV[1] run id   ARGV[2] now ms ('' = Redis clock)
-- Returns {1} when resumed, else {0, status} (the run is not paused).
if redis.call('GET', KEYS[8]) ~= ARGV[1] then
  return {0, 'not_running'}
end
local f = redis.call('HMGET', KEYS[1], 'status', 'pausedAt', 'anchorMs')
if f[1] ~= 'paused' then
  return {0, f[1]}
end
local now = now_ms(ARGV[2])
local paused = math.max(0, now - tonumber(f[2]))
redis.call('HINCRBY', KEYS[1], 'pausedMs', paused)
redis.call('HDEL', KEYS[1], 'pausedAt')
redis.call('HSET', KEYS[1], 'status', 'running', 'anchorMs', tonumber(f[3]) + paused,
  'rateAt', now, 'rateCount', 0)
publish_state(KEYS[1], KEYS[9], ARGV[1])
return {1}
