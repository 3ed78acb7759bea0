-- Reserve the jobs of the active run that are due now (the scheduler tick).
-- KEYS[1] active run id   KEYS[2] run hash   KEYS[3] last tick time
-- ARGV[1] run id   ARGV[2] tick interval in seconds   ARGV[3] now ms ('' = Redis clock)
-- ARGV[4] most jobs outstanding (reserved, not yet counted) at once; 0 = five ticks' worth
-- Returns {first job id, count, y}: jobs first .. first+count-1 are now the caller's to enqueue.
-- Concurrent ticks never reserve more than is due; after the scheduler has been away (or the
-- workers could not keep up) the schedule slides forward so a tick carries at most one tick's
-- worth of backlog. When y is above what the workers can do, at most ARGV[4] jobs wait in the
-- broker: the queue does not grow without bound, and the run goes at the workers' pace.
local now = now_ms(ARGV[3])
redis.call('SET', KEYS[3], now)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0, 0, '0'}
end
local h = hgetall(KEYS[2])
local x = tonumber(h.xTotal)
local y = tonumber(h.yMinute)
local reserved = tonumber(h.reserved)
local due = math.floor(tonumber(h.anchorCount) + (now - tonumber(h.anchorMs)) * y / 60000 + 1e-9)
if due > x then
  due = x
end
local per_tick = math.max(1, math.ceil(y * tonumber(ARGV[2]) / 60))
local limit = reserved + 2 * per_tick
if due > limit then
  redis.call('HSET', KEYS[2], 'anchorMs', now, 'anchorCount', limit)
  due = limit
end
local most = tonumber(ARGV[4])
if most <= 0 then
  most = math.max(1000, 5 * per_tick)
end
local room = most - (reserved - tonumber(h.processed) - tonumber(h.failed))
if due > reserved + room then
  -- the workers are behind: no debt either, the schedule goes on from what was reserved
  due = math.max(reserved, reserved + room)
  redis.call('HSET', KEYS[2], 'anchorMs', now, 'anchorCount', due)
end
if due <= reserved then
  return {reserved, 0, h.yMinute}
end
redis.call('HSET', KEYS[2], 'reserved', due)
return {reserved, due - reserved, h.yMinute}
