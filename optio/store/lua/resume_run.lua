-- Resume the paused active run at rate y from now: the schedule moves by the paused time (no
-- catch-up burst), which is added to pausedMs; the next tick sends the parked messages.
-- Keys: reads active_key, current_key; writes run_key.
-- ARGV[1] run id
-- ARGV[2] now ms ('' = Redis clock)
-- Returns {1} when resumed (and publishes the state), else {0, status} (the run is not paused;
-- 'not_running' when it is not the active run).
if not is_active(active_key, ARGV[1]) then
  return {0, 'not_running'}
end
local f = redis.call('HMGET', run_key, 'status', 'pausedAt', 'anchorMs')
if f[1] ~= 'paused' then
  return {0, f[1]}
end
local now = now_ms(ARGV[2])
local paused = math.max(0, now - tonumber(f[2]))
redis.call('HINCRBY', run_key, 'pausedMs', paused)
redis.call('HDEL', run_key, 'pausedAt')
redis.call('HSET', run_key, 'status', 'running', 'anchorMs', tonumber(f[3]) + paused,
  'rateAt', now, 'rateCount', 0)
publish_state(run_key, current_key, ARGV[1])
return {1}
