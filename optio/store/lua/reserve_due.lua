-- Reserve the jobs of the active run that are due now (the scheduler tick), as messages.
-- Concurrent ticks never reserve more than is due; after the scheduler has been away the
-- schedule slides forward so a tick carries at most one tick's worth of backlog. At most ARGV[4]
-- jobs wait in the broker: above the workers' pace the run goes at their pace (heldBack).
-- Jobs are due at the effective rate rateNow: y, unless jobs throttled (throttle_job.lua cuts
-- it); then it climbs back by y / ARGV[8] per window without a throttle, up to y (AIMD).
-- Keys: writes last_tick_key (every call); reads active_key; reads and writes run_key (the
-- schedule, rate and reserved fields), writes messages_key.
-- ARGV[1] run id
-- ARGV[2] tick interval, seconds
-- ARGV[3] now ms ('' = Redis clock)
-- ARGV[4] most jobs waiting (reserved, not counted, not leased by a worker) at once;
--         0 = five ticks' worth, at least 1000
-- ARGV[5] most jobs per message
-- ARGV[6] ms a reserved message may stay unconfirmed
-- ARGV[7] throttle window, ms
-- ARGV[8] steps from the throttle floor back to y
-- Returns {first job id, count, y, message key, ...}: jobs first .. first+count-1 are now the
-- caller's to publish, split into the listed messages ({0, 0, '0'} when the run is not the
-- active one). Each message is registered with a deadline of now + ARGV[6]: unless
-- confirm_enqueued says it is in the broker by then, a later tick publishes it again (the tick
-- that reserved it died).
local RATE_WINDOW_MS = 3000
local now = now_ms(ARGV[3])
redis.call('SET', last_tick_key, now)
if redis.call('GET', active_key) ~= ARGV[1] then
  return {0, 0, '0'}
end
local h = hgetall(run_key)
if h.status ~= 'running' then
  return {tonumber(h.reserved), 0, h.yMinute}  -- paused: nothing is due
end
local x = tonumber(h.xTotal)
local y = tonumber(h.yMinute)
local rate = tonumber(h.rateNow or h.yMinute)
local reserved = tonumber(h.reserved)
local accrued = tonumber(h.anchorCount) + (now - tonumber(h.anchorMs)) * rate / 60000
local window = tonumber(ARGV[7])
if rate < y and now - math.max(tonumber(h.throttleAt or 0), tonumber(h.raisedAt or 0)) >= window then
  -- a window without a throttle: one step back up (the schedule so far at the old rate)
  rate = math.min(y, rate + y / tonumber(ARGV[8]))
  redis.call('HSET', run_key, 'rateNow', rate, 'raisedAt', now, 'anchorMs', now,
    'anchorCount', tostring(accrued))
end
local due = math.floor(accrued + 1e-9)
if due > x then
  due = x
end
local per_tick = math.max(1, math.ceil(rate * tonumber(ARGV[2]) / 60))
local limit = reserved + 2 * per_tick
if due > limit then
  redis.call('HSET', run_key, 'anchorMs', now, 'anchorCount', limit)
  due = limit
end
local most = tonumber(ARGV[4])
if most <= 0 then
  most = math.max(1000, 5 * per_tick)
end
local waiting = reserved - tonumber(h.processed) - tonumber(h.failed) - tonumber(h.leasedJobs)
local room = most - waiting
local held_at = tonumber(h.heldAt)
if due > reserved + room then
  -- the workers are behind: no debt either, the schedule goes on from what was reserved
  due = math.max(reserved, reserved + room)
  redis.call('HSET', run_key, 'anchorMs', now, 'anchorCount', due)
  held_at = now
end
-- rateEnqueued: jobs/min reserved over the last window of ticks; heldBack: the cap held the
-- schedule back within the last window
local rate_at = tonumber(h.rateAt)
local rate_count = tonumber(h.rateCount) + math.max(0, due - reserved)
local held = (now - held_at < RATE_WINDOW_MS) and '1' or '0'
if now - rate_at >= RATE_WINDOW_MS then
  redis.call('HSET', run_key, 'rateEnqueued', rate_count * 60000 / (now - rate_at),
    'rateAt', now, 'rateCount', 0)
else
  redis.call('HSET', run_key, 'rateCount', rate_count)
end
redis.call('HSET', run_key, 'heldAt', held_at, 'heldBack', held)
if due <= reserved then
  return {reserved, 0, h.yMinute}
end
redis.call('HSET', run_key, 'reserved', due)
local size = tonumber(ARGV[5])
local deadline = now + tonumber(ARGV[6])
local out = {reserved, due - reserved, h.yMinute}
local args = {}
for first = reserved, due - 1, size do
  local key = first .. ':' .. math.min(size, due - first)
  out[#out + 1] = key
  args[#args + 1] = deadline
  args[#args + 1] = key
end
zadd_pairs(messages_key, args)
return out
