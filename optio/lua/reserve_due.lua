-- Reserve the jobs of the active run that are due now (the scheduler tick).
-- KEYS[1] active run id   KEYS[2] run hash   KEYS[3] last tick time
-- ARGV[1] run id   ARGV[2] tick interval in seconds   ARGV[3] now ms ('' = Redis clock)
-- Returns {first job id, count, y}: jobs first .. first+count-1 are now the caller's to enqueue.
-- Concurrent ticks never reserve more than is due; after the scheduler has been away the
-- schedule slides forward so a tick carries at most one tick's worth of backlog.
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
if due <= reserved then
  return {reserved, 0, h.yMinute}
end
redis.call('HSET', KEYS[2], 'reserved', due)
return {reserved, due - reserved, h.yMinute}
