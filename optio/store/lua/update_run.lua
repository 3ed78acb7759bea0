-- Change the total and/or the rate of the active run; a new rate applies from the next tick.
-- KEYS[1..7] the run's keys (see _prelude.lua)   KEYS[8] active run id
-- KEYS[9] current (watched) run id   KEYS[10] webhook outbox   KEYS[11] metrics (unused)
-- ARGV[1] run id   ARGV[2] new x ('' = unchanged)   ARGV[3] new y ('' = unchanged)
-- ARGV[4] now ms ('' = Redis clock)
-- Returns {1} when changed, {0, 'not_running'}, or {0, 'x_below_enqueued', reserved}.
if redis.call('GET', KEYS[8]) ~= ARGV[1] then
  return {0, 'not_running'}
end
local h = hgetall(KEYS[1])
local now = now_ms(ARGV[4])
if ARGV[2] ~= '' and tonumber(ARGV[2]) < tonumber(h.reserved) then
  return {0, 'x_below_enqueued', h.reserved}
end
if ARGV[3] ~= '' then
  -- keep the fraction of a job already accrued at the old rate, then go on at the new one
  -- (while paused, the schedule stands still at the pause)
  local at = h.status == 'paused' and tonumber(h.pausedAt) or now
  local old_y, new_y = tonumber(h.yMinute), tonumber(ARGV[3])
  local rate = tonumber(h.rateNow or h.yMinute)
  local accrued = tonumber(h.anchorCount) + (at - tonumber(h.anchorMs)) * rate / 60000
  -- y is the ceiling of the effective rate: an unthrottled run follows it, a throttled one
  -- keeps its rate below it (and climbs to it)
  rate = (rate >= old_y) and new_y or math.min(rate, new_y)
  redis.call('HSET', KEYS[1], 'yMinute', ARGV[3], 'rateNow', rate, 'anchorMs', at,
    'anchorCount', tostring(accrued))
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'xTotal', ARGV[2])
  if tonumber(h.processed) + tonumber(h.failed) >= tonumber(ARGV[2]) then
    finish_run(KEYS[8], ARGV[1], 'completed', now)
  end
end
publish_state(KEYS[1], KEYS[9], ARGV[1])
return {1}
