-- A job was throttled by the downstream (it raised optio.Throttle): run it again later without
-- using an attempt, and slow the whole run down (the multiplicative decrease of AIMD).
-- KEYS[1..7] the run's keys (see _prelude.lua)   KEYS[8] active run id
-- KEYS[9] current (watched) run id   KEYS[10] webhook outbox (unused)   KEYS[11] metrics hash
-- ARGV[1] run id   ARGV[2] job id   ARGV[3] seconds the downstream asked to wait ('' = none)
-- ARGV[4] factor of a cut (0 < f < 1)   ARGV[5] window ms: at most one cut per window
-- ARGV[6] lowest effective rate, jobs/min   ARGV[7] now ms ('' = Redis clock)
-- The effective rate rateNow is cut to rateNow * ARGV[4] (not below ARGV[6]) unless it was cut
-- within the last window (a burst of throttles cuts once). The job's new run takes one of the
-- run's slots (the schedule gives one job fewer), so the run sends at the effective rate, new
-- jobs and throttled ones together. The new run is a message "job:1:r-N" (N = 2, 3, ... per
-- throttle of that job; names.RERUN is -1), due after ARGV[3] s when given, else after one
-- spacing at the effective rate, and never before the previous throttled job's + one spacing.
-- Returns {outcome, ms until the job runs again, effective rate}: outcome 'throttled', 'done'
-- (counted before: nothing to do) or 'ended' (the run has ended: nothing recorded).
local f = redis.call('HMGET', KEYS[1], 'status', 'rateNow', 'yMinute', 'anchorMs',
  'anchorCount', 'throttleAt', 'throttleNext')
if not is_live(f[1]) then
  return {'ended', 0, '0'}
end
local job = ARGV[2]
if redis.call('GETBIT', KEYS[2], job) == 1 then
  return {'done', 0, '0'}
end
local now = now_ms(ARGV[7])
local rate = tonumber(f[2] or f[3])
if now - tonumber(f[6] or 0) >= tonumber(ARGV[5]) then
  local anchor_count = tonumber(f[5])
  if f[1] == 'running' then  -- (paused: the schedule stands still)
    anchor_count = anchor_count + (now - tonumber(f[4])) * rate / 60000
    redis.call('HSET', KEYS[1], 'anchorMs', now)
  end
  rate = math.max(tonumber(ARGV[6]), rate * tonumber(ARGV[4]))
  redis.call('HSET', KEYS[1], 'rateNow', rate, 'throttleAt', now,
    'anchorCount', tostring(anchor_count))
end
redis.call('HINCRBYFLOAT', KEYS[1], 'anchorCount', -1)
local spacing = 60000 / rate
local due = now + ((ARGV[3] ~= '') and tonumber(ARGV[3]) * 1000 or spacing)
due = math.max(due, tonumber(f[7] or 0))
redis.call('HSET', KEYS[1], 'throttleNext', due + spacing)
local again = redis.call('HINCRBY', KEYS[5], 't' .. job, 1)
redis.call('ZADD', KEYS[6], due, job .. ':1:r-' .. (again + 1))
redis.call('HINCRBY', KEYS[1], 'throttled', 1)
redis.call('HINCRBY', KEYS[11], 'throttled_total', 1)
publish_state(KEYS[1], KEYS[9], ARGV[1])
return {'throttled', math.floor(due - now), tostring(rate)}
