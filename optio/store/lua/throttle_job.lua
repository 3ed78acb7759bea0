-- A job was throttled by the downstream (it raised optio.Throttle): run it again later without
-- using an attempt, and slow the whole run down (the multiplicative decrease of AIMD).
-- The effective rate rateNow is cut to rateNow * ARGV[4] (not below ARGV[6]) unless it was cut
-- within the last window (a burst of throttles cuts once). The job's new run takes one of the
-- run's slots (the schedule gives one job fewer), so the run sends at the effective rate, new
-- jobs and throttled ones together. The new run is a message "job:1:r-N" (N = 2, 3, ... per
-- throttle of that job; names.RERUN is -1). Throttled jobs queue one spacing (at the effective
-- rate) apart: each takes the next place, throttleNext, which moves one spacing per throttled
-- job. A job runs at its place; one that asked to wait (ARGV[3] s, capped at ARGV[8] ms) waits
-- that long instead of the first spacing, counted from its place (so jobs asking the same wait
-- stay a spacing apart). Its own wait never moves throttleNext: it delays no other job.
-- The new run's message owns the job from now (owners_key): no other message leases it.
-- Keys: reads done_key, current_key; writes run_key (the rate and the schedule), attempts_key
-- (the throttles of the job, field "t<job id>"), messages_key, owners_key, metrics_key
-- (throttled_total).
-- ARGV[1] run id
-- ARGV[2] job id
-- ARGV[3] seconds the downstream asked to wait, >= 0 ('' = none)
-- ARGV[4] factor of a cut (0 < f < 1)
-- ARGV[5] window, ms: at most one cut per window
-- ARGV[6] lowest effective rate, jobs/min
-- ARGV[7] now ms ('' = Redis clock)
-- ARGV[8] most ms a job's own wait may be (OPTIO_THROTTLE_MAX_WAIT)
-- Returns {outcome, ms until the job runs again, effective rate in jobs/min}: outcome
-- 'throttled' (publishes the state), 'done' (counted before: nothing to do) or 'ended' (the
-- run has ended: nothing recorded).
local f = redis.call('HMGET', run_key, 'status', 'rateNow', 'yMinute', 'anchorMs',
  'anchorCount', 'throttleAt', 'throttleNext')
if not is_live(f[1]) then
  return {'ended', 0, '0'}
end
local job = ARGV[2]
if redis.call('GETBIT', done_key, job) == 1 then
  return {'done', 0, '0'}
end
local now = now_ms(ARGV[7])
local rate = tonumber(f[2] or f[3])
if now - tonumber(f[6] or 0) >= tonumber(ARGV[5]) then
  local anchor_count = tonumber(f[5])
  if f[1] == 'running' then  -- (paused: the schedule stands still)
    anchor_count = anchor_count + (now - tonumber(f[4])) * rate / 60000
    redis.call('HSET', run_key, 'anchorMs', now)
  end
  rate = math.max(tonumber(ARGV[6]), rate * tonumber(ARGV[4]))
  redis.call('HSET', run_key, 'rateNow', rate, 'throttleAt', now,
    'anchorCount', tostring(anchor_count))
end
redis.call('HINCRBYFLOAT', run_key, 'anchorCount', -1)
local spacing = 60000 / rate
local place = math.max(now + spacing, tonumber(f[7] or 0))
local wait = spacing
if ARGV[3] ~= '' then
  wait = math.min(tonumber(ARGV[3]) * 1000, tonumber(ARGV[8]))
end
local due = place - spacing + wait
redis.call('HSET', run_key, 'throttleNext', place + spacing)
local again = redis.call('HINCRBY', attempts_key, 't' .. job, 1)
local rerun = job .. ':1:r-' .. (again + 1)
redis.call('ZADD', messages_key, due, rerun)
redis.call('HSET', owners_key, job, rerun)
redis.call('HINCRBY', run_key, 'throttled', 1)
publish_state(run_key, current_key, ARGV[1])
redis.call('HINCRBY', metrics_key, 'throttled_total', 1)  -- the metrics last
return {'throttled', math.floor(due - now), tostring(rate)}
