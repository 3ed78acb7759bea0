-- Change the total and/or the rate of the active run; a new rate applies from the next tick.
-- A total reached by the jobs counted completes the run.
-- Keys: reads active_key, current_key; writes run_key (xTotal, yMinute, rateNow, the schedule);
-- when the run completes (finish_run) active_key, outbox_key, and the run's keys expire
-- (expire_run).
-- ARGV[1] run id
-- ARGV[2] new x, jobs ('' = unchanged)
-- ARGV[3] new y, jobs/min ('' = unchanged)
-- ARGV[4] now ms ('' = Redis clock)
-- Returns {1} when changed (and publishes the state), {0, 'not_running'},
-- {0, 'x_below_enqueued', reserved}, {0, 'x_items', x} (a run with items has one job per item:
-- its x cannot change), or {0, 'deadline'} (a deadline run's y follows from its deadline).
if not is_active(active_key, ARGV[1]) then
  return {0, 'not_running'}
end
local h = hgetall(run_key)
local now = now_ms(ARGV[4])
if ARGV[2] ~= '' and h.items and tonumber(ARGV[2]) ~= tonumber(h.xTotal) then
  return {0, 'x_items', h.xTotal}
end
if ARGV[3] ~= '' and h.deadline then
  return {0, 'deadline'}
end
if ARGV[2] ~= '' and tonumber(ARGV[2]) < tonumber(h.reserved) then
  return {0, 'x_below_enqueued', h.reserved}
end
if ARGV[3] ~= '' then
  -- keep the fraction of a job already accrued at the old rate, then go on at the new one
  -- (while paused, the schedule stands still at the pause)
  local at = h.status == 'paused' and tonumber(h.pausedAt) or now
  local old_y, new_y = tonumber(h.yMinute), tonumber(ARGV[3])
  local rate = tonumber(h.rateNow or h.yMinute)
  local accrued = tonumber(h.anchorCount)
    + (at - tonumber(h.anchorMs)) * schedule_rate(rate, h.shareRate) / 60000
  -- y is the ceiling of the effective rate: an unthrottled run follows it, a throttled one
  -- keeps its rate below it (and climbs to it)
  rate = (rate >= old_y) and new_y or math.min(rate, new_y)
  redis.call('HSET', run_key, 'yMinute', ARGV[3], 'rateNow', rate, 'anchorMs', at,
    'anchorCount', tostring(accrued))
end
if ARGV[2] ~= '' then
  redis.call('HSET', run_key, 'xTotal', ARGV[2])
  if tonumber(h.processed) + tonumber(h.failed) >= tonumber(ARGV[2]) then
    finish_run(run_key, active_key, outbox_key, ARGV[1], 'completed', now)
    expire_run(run_key, done_key, results_key, errors_key, attempts_key, messages_key,
      holders_key, owners_key, items_key)
  end
end
publish_state(run_key, current_key, ARGV[1])
return {1}
