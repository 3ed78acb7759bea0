-- A job was throttled by the downstream (it raised optio.Throttle): run it again later without
-- using an attempt, and slow the whole run down (the multiplicative decrease of AIMD).
-- The effective rate rateNow is cut at most once per window (a burst of throttles cuts once).
-- The first cut of a run is to rateNow * ARGV[4]: the run left full speed, and how far above
-- the downstream's limit it was is unknown. The first refusal after a calm window (the rate
-- climbed just past the limit) cuts to CUT_BELOW of the rate. A refusal after others in the
-- second half of the last cut's window, LATE_MOST of them and LATE_SHARE of the jobs due then
-- (the rate is still far above the limit), measures: the jobs done per minute since the
-- last cut are what the downstream took, and the rate goes to CUT_BELOW of that, never deeper
-- than rateNow * ARGV[4] at once. Never below ARGV[6]. The rate refused is kept as rateTop:
-- the rate climbs back halfway to it each calm window, then probes above it (reserve_due.lua),
-- so it settles just under the limit, and finds it fast after a deep cut.
-- The job's new run takes the slot of the next new job (the schedule gives one job fewer, so
-- every new job is due one spacing later): new jobs and throttled ones keep the spacing of the
-- effective rate between them, which a downstream allowing no burst needs (when the ticks do
-- not reserve ahead of now, throttled jobs queue a spacing apart from now: throttleNext). A
-- job that asked
-- to wait (ARGV[3] s, capped at ARGV[8] ms) runs that long after its slot's time less one
-- spacing instead (so jobs asking the same wait stay a spacing apart); its own wait delays no
-- other job. The new run is a message "job:1:r-N" (N = 2, 3, ... per throttle of that job;
-- names.RERUN is -1); it owns the job from now (owners_key): no other message leases it.
-- Keys: reads done_key, current_key; writes run_key (the rate, the schedule, throttleAt,
-- throttleLast, throttleNext, lateThrottles, processedAtCut, rateTop), attempts_key (the
-- throttles of the job, field
-- "t<job id>"), messages_key, owners_key, metrics_key (throttled_total); with a key (ARGV[9]),
-- throttles_key (that key's fields) and run_key's throttleKey instead of its rate.
-- ARGV[1] run id
-- ARGV[2] job id
-- ARGV[3] seconds the downstream asked to wait, >= 0 ('' = none)
-- ARGV[4] factor of a cut (0 < f < 1)
-- ARGV[5] window, ms: at most one cut per window
-- ARGV[6] lowest effective rate, jobs/min
-- ARGV[7] now ms ('' = Redis clock)
-- ARGV[8] most ms a job's own wait may be (OPTIO_THROTTLE_MAX_WAIT)
-- ARGV[9] the downstream's key (Throttle(key=...)); '' = none: the run's own rate is cut.
--         With a key, the rate of that key in throttles_key is cut instead (see below), and
--         the run is marked as calling it (run field throttleKey).
-- Returns {outcome, ms until the job runs again, effective rate in jobs/min (of the key, with
-- one)}: outcome
-- 'throttled' (publishes the state), 'done' (counted before: nothing to do) or 'ended' (the
-- run has ended: nothing recorded).
local CUT_BELOW = 0.95
local LATE_MOST = 5
local LATE_SHARE = 0.1
local f = redis.call('HMGET', run_key, 'status', 'rateNow', 'yMinute', 'anchorMs',
  'anchorCount', 'throttleAt', 'processed', 'processedAtCut', 'reserved', 'throttleNext',
  'lateThrottles', 'shareRate')
if not is_live(f[1]) then
  return {'ended', 0, '0'}
end
local job = ARGV[2]
if redis.call('GETBIT', done_key, job) == 1 then
  return {'done', 0, '0'}
end
local now = now_ms(ARGV[7])
-- the rate the run went at: the cut is from it, and the schedule moves from it
local rate = schedule_rate(f[2] or f[3], f[12])
local anchor_ms, anchor_count = tonumber(f[4]), tonumber(f[5])
local last_cut = tonumber(f[6] or 0)
local key = ARGV[9] or ''
local reported = nil
if key ~= '' then
  -- a keyed throttle: the rate of that downstream, shared by every run calling it, is cut
  -- (once per window), from what its runs were going at; the run's own rate stays, and the
  -- next tick gives the run its share of the key's rate (optio/worker/shares.py)
  local k = key .. '|'
  local joined = redis.call('HGET', run_key, 'throttleKey') == key
  if not joined then
    redis.call('HSET', run_key, 'throttleKey', key)
  end
  local g = redis.call('HMGET', throttles_key, k .. 'at', k .. 'going', k .. 'rate', k .. 'late')
  local key_cut = tonumber(g[1] or 0)
  local going = tonumber(g[2] or 0)
  if not joined or not g[2] then
    going = going + rate  -- a run new to the key: its rate was not counted in yet
  end
  if g[3] then
    going = math.min(going, tonumber(g[3]))
  end
  reported = going
  local window = tonumber(ARGV[5])
  if now - key_cut >= window then
    -- the first cut, and a cut after many refusals late in the last one's window (LATE_MOST,
    -- and LATE_SHARE of the calls due then: still far above the limit), by ARGV[4]; a cut
    -- after a calm climb (just past the limit) to CUT_BELOW
    local late = tonumber(g[4] or 0)
    local factor = CUT_BELOW
    if key_cut == 0 or late >= math.max(LATE_MOST, LATE_SHARE * going * window / 2 / 60000) then
      factor = tonumber(ARGV[4])
    end
    reported = math.max(tonumber(ARGV[6]), going * factor)
    redis.call('HSET', throttles_key, k .. 'rate', tostring(reported), k .. 'at', now,
      k .. 'top', tostring(going), k .. 'late', 0)
  elseif now - key_cut >= window / 2 then
    redis.call('HINCRBY', throttles_key, k .. 'late', 1)
  end
  redis.call('HSET', throttles_key, k .. 'last', now)
elseif now - last_cut >= tonumber(ARGV[5]) then
  if f[1] == 'running' then  -- (paused: the schedule stands still)
    anchor_ms, anchor_count = reanchor(anchor_ms, anchor_count, rate, tonumber(f[9]), now)
  end
  local deepest = tonumber(ARGV[4])
  local factor = deepest
  if last_cut > 0 then
    factor = CUT_BELOW  -- the first refusal since the rate climbed: it just passed the limit
    local late = tonumber(f[11] or 0) + 1
    if late >= math.max(LATE_MOST, LATE_SHARE * rate * tonumber(ARGV[5]) / 2 / 60000) then
      -- refused LATE_MOST times late in the last cut's window or after it (not the echo of
      -- jobs sent before the cut, within a tick, nor a lone early start): the rate, which
      -- stood still since, is still above the limit; the jobs done per minute since that cut
      -- are what the downstream takes
      local took = (tonumber(f[7]) - tonumber(f[8] or 0)) * 60000 / math.max(1, now - last_cut)
      factor = math.max(deepest, math.min(rate, took) / rate * CUT_BELOW)
    end
  end
  local refused = rate
  rate = math.max(tonumber(ARGV[6]), rate * factor)
  redis.call('HSET', run_key, 'rateNow', rate, 'throttleAt', now, 'processedAtCut', f[7],
    'rateTop', tostring(refused), 'anchorMs', anchor_ms, 'lateThrottles', 0)
elseif now - last_cut >= tonumber(ARGV[5]) / 2 then
  redis.call('HINCRBY', run_key, 'lateThrottles', 1)
end
redis.call('HSET', run_key, 'throttleLast', now)
-- the job takes the slot of the next new job: every new job is due one spacing later
anchor_count = anchor_count - 1
redis.call('HSET', run_key, 'anchorCount', tostring(anchor_count))
local spacing = 60000 / rate
local slot = anchor_ms + (tonumber(f[9]) - anchor_count) * spacing
-- (the slot is ahead of now while ticks reserve ahead; else throttled jobs queue a spacing apart)
local place = math.max(slot, now + spacing, tonumber(f[10] or 0))
local due = place
if ARGV[3] ~= '' then
  due = place - spacing + math.min(tonumber(ARGV[3]) * 1000, tonumber(ARGV[8]))
end
redis.call('HSET', run_key, 'throttleNext', place + spacing)
local again = redis.call('HINCRBY', attempts_key, 't' .. job, 1)
local rerun = job .. ':1:r-' .. (again + 1)
redis.call('ZADD', messages_key, due, rerun)
redis.call('HSET', owners_key, job, rerun)
redis.call('HINCRBY', run_key, 'throttled', 1)
publish_state(run_key, current_key, ARGV[1])
redis.call('HINCRBY', metrics_key, 'throttled_total', 1)  -- the metrics last
return {'throttled', math.floor(due - now), tostring(reported or rate)}
