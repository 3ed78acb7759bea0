-- Reserve the jobs of the active run that are due by now + a look-ahead (the scheduler tick),
-- as messages; the caller sends each message at its first job's due time (paced ticks) or at
-- once. Concurrent ticks never reserve more than is due; after the scheduler has been away the
-- schedule slides forward so a tick carries at most one tick's worth of backlog. At most ARGV[4]
-- jobs wait in the broker: above the workers' pace the run goes at their pace (heldBack).
-- Jobs are due at the effective rate rateNow: y, unless jobs throttled (throttle_job.lua cuts
-- it); then it climbs back one step per window without a throttle, up to y (see climb).
-- heldBack: within the last RATE_WINDOW_MS the jobs enqueued fell behind the schedule of a tick
-- ago by more than a tick's jobs, or the schedule slid instead of building that debt; heldBy says why:
-- 'workers' (the backlog cap, automatic: jobs wait in the broker because workers are slower
-- than y), 'cap' (the same with ARGV[4] set by the operator), 'scheduler' (the ticks don't
-- reserve or publish as fast as the schedule: beat away or late, a slow broker or Redis),
-- 'ceiling' (the deployment's OPTIO_MAX_RATE grants the run less than its rate) or 'inFlight'
-- (its maxInFlight, or its share of OPTIO_MAX_IN_FLIGHT, is reached).
-- Keys: writes last_tick_key (every call); reads active_key; reads and writes run_key (the
-- schedule, rate, reserved and held fields), writes messages_key.
-- ARGV[1] run id
-- ARGV[2] tick interval, seconds
-- ARGV[3] now ms ('' = Redis clock)
-- ARGV[4] most jobs waiting (reserved, not counted, not leased by a worker) at once;
--         0 = five ticks' worth, at least 1000
-- ARGV[5] most jobs per message
-- ARGV[6] ms a reserved message may stay unconfirmed
-- ARGV[7] throttle window, ms
-- ARGV[8] steps back to y: no step of the climb is above y / ARGV[8]
-- ARGV[9] look-ahead, ms: reserve the jobs due by now + this (0: due by now)
-- ARGV[10] the run's share of the deployment's ceiling, jobs/min: the schedule goes at most at
--          this rate ('' = no ceiling binds it; optio/worker/shares.py)
-- ARGV[11] most jobs of the run outstanding (reserved, not counted yet) after this tick: its
--          share of OPTIO_MAX_IN_FLIGHT ('' = no bound but the run's own maxInFlight)
-- ARGV[12] 1 when the share is of OPTIO_MAX_RATE (the run is held back by it), 0 when it is
--          only of the rate of a downstream the run's jobs were throttled by (Throttle(key=)),
--          which, as the run's own throttling, does not hold it back
-- A deadline run (field deadline) has its y set here, every tick: the jobs not reserved yet
-- over the time left (less a tick, for the last ones to run), and projectedFinish: when it
-- finishes at the rate it gets (the ceiling, throttles and its workers allowing).
-- Returns {first job id, count, y, rate, schedule anchor ms, anchor count, now ms, message key,
-- ...}: jobs first .. first+count-1 are now the caller's to publish, split into the listed
-- messages; job j is due at anchor ms + (j + 1 - anchor count) * 60000 / rate ({0, 0, '0', ...}
-- when the run is not the active one). Each message is registered with a deadline of now +
-- ARGV[6]: unless confirm_enqueued says it is in the broker by then, a later tick publishes it
-- again (the tick that reserved it died).
local RATE_WINDOW_MS = 3000
--- Share of rateTop a step probes by once the rate is back at it.
local PROBE = 0.02
--- Most share of rateTop one probing step adds near it (below NEAR_TOP times it): a step past
--- the limit refuses at most this. Further up the steps double freely: the limit rose.
local PROBE_MOST = 0.08
local NEAR_TOP = 1.25

--- The effective rate one calm window after ``rate``: halfway back to rateTop (the rate the
--- downstream refused at its last cut, throttle_job.lua), at least PROBE of it a step; at or
--- above it, probing up by a step that doubles each window (PROBE, 2 PROBE, 4 PROBE of top,
--- then PROBE_MOST a window up to NEAR_TOP times top, then doubling again), so a downstream
--- that allows more again is found in a few windows.
--- No step is above y / steps (without a top, the step is that: the plain additive increase).
local function climb(rate, y, top, steps)
  local most = y / steps
  if top <= 0 then
    return rate + most
  end
  if rate < top then
    return math.min(top, rate + math.min(most, math.max((top - rate) / 2, top * PROBE)))
  end
  local step = math.max(top * PROBE, rate - top)
  if rate < top * NEAR_TOP then
    step = math.min(step, top * PROBE_MOST)
  end
  return rate + math.min(most, step)
end

local now = now_ms(ARGV[3])
redis.call('SET', last_tick_key, now)
if not is_active(active_key, ARGV[1]) then
  return {0, 0, '0', '0', now, 0, now}
end
local h = hgetall(run_key)
local rate = tonumber(h.rateNow or h.yMinute)
if h.status ~= 'running' then
  return {tonumber(h.reserved), 0, h.yMinute, tostring(rate), now, 0, now}  -- paused: none due
end
local x = tonumber(h.xTotal)
local y = tonumber(h.yMinute)
local reserved = tonumber(h.reserved)
local anchor_ms, anchor_count = tonumber(h.anchorMs), tonumber(h.anchorCount)
local tick_ms = tonumber(ARGV[2]) * 1000
local old_share = h.shareRate
-- the rate the schedule went at until now: a change of it below moves the anchor first
local went = schedule_rate(rate, old_share)
if h.deadline and x > reserved then
  -- y: the jobs not reserved over the time left (a tick before the deadline, so the last ones
  -- run by it); a run behind spreads what it owes over that time: it never bursts. (Once all
  -- are reserved y stays: the reruns of throttled jobs go at it.)
  local left_ms = math.max(tonumber(h.deadline) - tick_ms - now, tick_ms)
  local new_y = (x - reserved) * 60000 / left_ms
  rate = (rate >= y) and new_y or math.min(rate, new_y)
  y = new_y
  redis.call('HSET', run_key, 'yMinute', tostring(y), 'rateNow', tostring(rate))
end
local window = tonumber(ARGV[7])
local calm_since = math.max(tonumber(h.throttleAt or 0), tonumber(h.throttleLast or 0),
  tonumber(h.raisedAt or 0))
if rate < y and now - calm_since >= window then
  -- a window without a throttle: one step back up
  rate = math.min(y, climb(rate, y, tonumber(h.rateTop or 0), tonumber(ARGV[8])))
  redis.call('HSET', run_key, 'rateNow', rate, 'raisedAt', now)
end
local share = ARGV[10] ~= '' and tonumber(ARGV[10]) or nil
if share and share >= rate then
  share = nil  -- the ceiling does not bind the run
end
if share then
  redis.call('HSET', run_key, 'shareRate', tostring(share))
elseif old_share then
  redis.call('HDEL', run_key, 'shareRate')
end
local goes = share and math.min(rate, share) or rate
if reserved == 0 then
  went = goes  -- a run's first reservation: nothing was due at another rate before it
end
if goes ~= went then
  -- the schedule so far at the old rate, on at the new one
  anchor_ms, anchor_count = reanchor(anchor_ms, anchor_count, went, reserved, now)
  redis.call('HSET', run_key, 'anchorMs', anchor_ms, 'anchorCount', tostring(anchor_count))
end
rate = goes
local horizon = now + tonumber(ARGV[9] or '0')
local due = math.floor(anchor_count + (horizon - anchor_ms) * rate / 60000 + 1e-9)
if due > x then
  due = x
end
local per_tick = math.max(1, math.ceil(rate * tonumber(ARGV[2]) / 60))
local held_by = nil
local limit = reserved + 2 * per_tick
if due > limit then
  -- the ticks fell behind (beat away or late): the schedule slides instead of a burst
  anchor_ms, anchor_count = horizon, limit
  redis.call('HSET', run_key, 'anchorMs', anchor_ms, 'anchorCount', anchor_count)
  due = limit
  held_by = 'scheduler'
end
local most = tonumber(ARGV[4])
local auto_cap = most <= 0
if auto_cap then
  most = math.max(1000, 5 * per_tick)
end
local waiting = reserved - tonumber(h.processed) - tonumber(h.failed) - tonumber(h.leasedJobs)
local room = most - waiting
if due > reserved + room then
  -- the workers are behind: no debt either, the schedule goes on from what was reserved
  due = math.max(reserved, reserved + room)
  anchor_ms, anchor_count = horizon, due
  redis.call('HSET', run_key, 'anchorMs', anchor_ms, 'anchorCount', anchor_count)
  held_by = auto_cap and 'workers' or 'cap'
end
local out_most = tonumber(h.maxInFlight or 0)
if out_most <= 0 then
  out_most = nil
end
if ARGV[11] ~= '' then
  out_most = math.min(out_most or math.huge, tonumber(ARGV[11]))
end
if out_most then
  local outstanding = reserved - tonumber(h.processed) - tonumber(h.failed)
  if due > reserved + out_most - outstanding then
    -- as many jobs out as the run may have at once: the schedule goes on from what was reserved
    due = math.max(reserved, reserved + out_most - outstanding)
    anchor_ms, anchor_count = horizon, due
    redis.call('HSET', run_key, 'anchorMs', anchor_ms, 'anchorCount', anchor_count)
    held_by = 'inFlight'
  end
end
if not held_by and share and ARGV[12] == '1' then
  held_by = 'ceiling'
end
if h.deadline then
  -- when the run finishes at the rate it goes (or, held back by its workers, at the rate they
  -- took over the last window), the last jobs a tick after they are sent
  local pace = rate
  if held_by and held_by ~= 'ceiling' and tonumber(h.rateEnqueued) > 0 then
    pace = math.min(pace, tonumber(h.rateEnqueued))
  end
  redis.call('HSET', run_key, 'projectedFinish',
    string.format('%.0f', now + (x - due) * 60000 / pace + tick_ms))
end
if not held_by then
  -- what was due a tick ago but is not in the broker yet (the ticks publish slower than the
  -- schedule): a tick's grace covers a tick without look-ahead, which publishes what fell due
  -- since the last one, and a run's first tick, which catches up from the start
  local at = now - tonumber(ARGV[2]) * 1000
  local scheduled = math.min(x, anchor_count + (at - anchor_ms) * rate / 60000)
  if scheduled - tonumber(h.enqueued) > per_tick then
    held_by = 'scheduler'
  end
end
local held_at = tonumber(h.heldAt)
if held_by then
  held_at = now
  redis.call('HSET', run_key, 'heldBy', held_by)
end
-- rateEnqueued: jobs/min reserved over the last window of ticks
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
local y_text = h.yMinute
local sched = {tostring(rate), tostring(anchor_ms), tostring(anchor_count), now}
if due <= reserved then
  return {reserved, 0, y_text, unpack(sched)}
end
redis.call('HSET', run_key, 'reserved', due)
local size = tonumber(ARGV[5])
local deadline = now + tonumber(ARGV[6])
local out = {reserved, due - reserved, y_text, unpack(sched)}
local args = {}
for first = reserved, due - 1, size do
  local key = first .. ':' .. math.min(size, due - first)
  out[#out + 1] = key
  args[#args + 1] = deadline
  args[#args + 1] = key
end
zadd_pairs(messages_key, args)
return out
