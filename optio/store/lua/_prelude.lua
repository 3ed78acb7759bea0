-- Shared helpers, put in front of every script by optio/store/scripts.py (script_text). The
-- loader defines, just above this text: OPTIO_CHANNEL (the pub/sub channel), OPTIO_RUN_TTL and
-- OPTIO_RESULT_TTL (seconds a finished run's keys and its results are kept), OPTIO_KEY_COUNT
-- (how many keys every script receives).
--
-- The keys. Every script receives the same ordered list, names.script_keys(run id): the run's
-- nine keys, then the shared ones. The last lines of this prelude bind each to the local named
-- below, once; no script or helper reads the list by position. optio/names.py says what each
-- key holds, and every field of the run hash.
--    1 run_key        hash: the run's state
--    2 done_key       bitmap: bit k set once job k is counted
--    3 results_key    hash: job id -> record "<finishedAt>|<ms>|<result>" (its outcome)
--    4 errors_key     hash: job id -> error of a job that failed for good
--    5 attempts_key   hash: job id -> failed attempts so far
--    6 messages_key   zset: message key -> deadline ms
--    7 holders_key    hash: message key -> "token:jobs left" of the worker leasing it
--    8 owners_key     hash: job id -> the message that alone may run it (its retry or rerun)
--    9 items_key      hash: chunk number -> JSON array of the items of 1000 jobs (runs with items)
--   10 active_key     zset: the runs that have not ended (running or paused) -> startedAt ms
--   11 current_key    string: id of the run clients are shown by default (the newest active)
--   12 last_tick_key  string: ms of the last scheduler tick
--   13 runs_key       zset: the run history, run id -> startedAt ms
--   14 outbox_key     zset: the webhook outbox, run id -> ms its delivery is due
--   15 metrics_key    hash: totals over all runs, for /metrics
-- (The numbers are for reading a MONITOR trace or an EVALSHA by hand.)
-- One list for all scripts, though each touches only some of these keys: no slot means one
-- thing in one script and another elsewhere, and a new key is one name at the end of this list,
-- of the binding below and of names.script_keys. A script that works on no run (claim_webhooks)
-- receives the list too, for run id names.NO_RUN, which no run has, and touches none of the
-- run's keys: one rule without exceptions, at the cost of a few key names sent and not used.
-- The helpers below are defined before the binding, so they cannot see the keys: each takes
-- the keys it touches as parameters.
--
-- Each script's header says what it does, which keys it reads and writes, its ARGV (number,
-- meaning, unit) and what it returns. "now ms ('' = Redis clock)" is an ARGV of milliseconds
-- since the epoch, given by tests; '' lets the script read the Redis server's clock.
-- A message key is "first:count" (jobs first .. first+count-1) or "job:1:rN" (retry N of a job).

-- Deadline of a parked message (see names.py, messages zset): a score no clock reaches.
local PARKED = 9e15

-- The schedule (anchor ms, anchor count: job j is due at anchor ms + (j + 1 - anchor count) *
-- 60000 / rate) moved to a new rate at `now`. While the ticks reserve ahead of now, the jobs
-- reserved keep their times and the next one to reserve (job `reserved`) keeps its own: the new
-- spacing starts after it, so no job of the new rate comes between jobs already sent at the
-- old one (a downstream allowing no burst would refuse one of the two; throttle cuts and climbs
-- move it so). Else the schedule keeps what it accrued by now at the old rate and goes on
-- from now.
local function reanchor(anchor_ms, anchor_count, rate, reserved, now)
  local next_due = anchor_ms + (reserved + 1 - anchor_count) * 60000 / rate
  if next_due > now then
    return next_due, reserved + 1
  end
  return now, anchor_count + (now - anchor_ms) * rate / 60000
end

-- The rate the run's schedule goes at: its effective rate (rateNow: y, or cut by throttles),
-- or the share the deployment's ceiling grants it (shareRate, set by the tick while the
-- ceiling binds: optio/worker/shares.py) when that is lower.
local function schedule_rate(rate_now, share)
  local rate = tonumber(rate_now)
  if share and share ~= '' then
    return math.min(rate, tonumber(share))
  end
  return rate
end

-- Whether run `run_id` is active: started and not ended (running or paused).
local function is_active(active_key, run_id)
  return redis.call('ZSCORE', active_key, run_id) ~= false
end

-- Add run `run_id` to the active runs as the newest: scored by when it started (`now`, ms), a
-- thousandth of a ms after the newest one when they started in the same ms.
local function activate(active_key, run_id, now)
  local top = redis.call('ZREVRANGE', active_key, 0, 0, 'WITHSCORES')
  local score = now
  if top[2] and tonumber(top[2]) >= now then
    score = tonumber(top[2]) + 0.001
  end
  redis.call('ZADD', active_key, string.format('%.3f', score), run_id)
end

-- Whether a run with this status has not ended (running or paused).
local function is_live(status)
  return status == 'running' or status == 'paused'
end

-- Milliseconds since the epoch: the caller's value when given (tests), else the Redis
-- server's clock, so every machine of a deployment shares one clock.
local function now_ms(arg)
  if arg ~= nil and arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- ZADD the score, member, score, member, ... of `pairs` to `key`, 500 pairs a call (Lua's unpack
-- takes a bounded number of values).
local function zadd_pairs(key, pairs)
  for i = 1, #pairs, 1000 do
    redis.call('ZADD', key, unpack(pairs, i, math.min(i + 999, #pairs)))
  end
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do
    h[flat[i]] = flat[i + 1]
  end
  return h
end

-- The done bitmap is read and written a range at a time: one BITFIELD call of fields of
-- BIT_FIELD bits (exact in Lua's numbers) for a message's jobs, not a GETBIT and a SETBIT per job.
-- At high rates a command per job is most of what Redis, and its append-only file, spend time on.
local BIT_FIELD = 48

-- The fields {offset, width} covering bits lo .. hi.
local function bit_fields(lo, hi)
  local fields = {}
  for off = lo, hi, BIT_FIELD do
    fields[#fields + 1] = {off, math.min(BIT_FIELD, hi - off + 1)}
  end
  return fields
end

-- The values of `fields` in bitmap `key` (BITFIELD_RO, 1000 fields a call: Lua's unpack takes a
-- bounded number of values).
local function read_fields(key, fields)
  local values = {}
  for i = 1, #fields, 1000 do
    local args = {}
    for j = i, math.min(i + 999, #fields) do
      args[#args + 1] = 'GET'
      args[#args + 1] = 'u' .. fields[j][2]
      args[#args + 1] = fields[j][1]
    end
    for _, value in ipairs(redis.call('BITFIELD_RO', key, unpack(args))) do
      values[#values + 1] = value
    end
  end
  return values
end

-- The place value of bit `bit` in the field {offset, width}: bits run from its most significant.
local function bit_value(field, bit)
  return 2 ^ (field[2] - 1 - (bit - field[1]))
end

-- The lowest and the highest of `bits` (numbers, at least one).
local function bit_range(bits)
  local lo, hi = bits[1], bits[1]
  for _, bit in ipairs(bits) do
    lo, hi = math.min(lo, bit), math.max(hi, bit)
  end
  return lo, hi
end

-- Whether bits `bits` (numbers, any order) are so spread that reading their whole range costs
-- more than one command each.
local function sparse(bits, lo, hi)
  return hi - lo + 1 > 64 * #bits
end

-- The set {bit = true} of the bits among `bits` (numbers) that are 0 in bitmap `key`.
local function unset_among(key, bits)
  local out = {}
  if #bits == 0 then
    return out
  end
  local lo, hi = bit_range(bits)
  if sparse(bits, lo, hi) then
    for _, bit in ipairs(bits) do
      if redis.call('GETBIT', key, bit) == 0 then
        out[bit] = true
      end
    end
    return out
  end
  local fields = bit_fields(lo, hi)
  local values = read_fields(key, fields)
  for _, bit in ipairs(bits) do
    local n = math.floor((bit - lo) / BIT_FIELD) + 1
    if math.floor(values[n] / bit_value(fields[n], bit)) % 2 == 0 then
      out[bit] = true
    end
  end
  return out
end

-- The bits lo .. hi of bitmap `key` that are 0, in order.
local function unset_bits(key, lo, hi)
  local out = {}
  local fields = bit_fields(lo, hi)
  local values = read_fields(key, fields)
  for n, field in ipairs(fields) do
    for bit = field[1], field[1] + field[2] - 1 do
      if math.floor(values[n] / bit_value(field, bit)) % 2 == 0 then
        out[#out + 1] = bit
      end
    end
  end
  return out
end

-- Set bits `bits` (numbers, each 0 now, no repeats) of bitmap `key`: one BITFIELD call per
-- 1000 fields that change.
local function set_bits(key, bits)
  if #bits == 0 then
    return
  end
  local lo, hi = bit_range(bits)
  if sparse(bits, lo, hi) then
    for _, bit in ipairs(bits) do
      redis.call('SETBIT', key, bit, 1)
    end
    return
  end
  local fields = bit_fields(lo, hi)
  local values = read_fields(key, fields)
  local changed = {}
  for _, bit in ipairs(bits) do
    local n = math.floor((bit - lo) / BIT_FIELD) + 1
    values[n] = values[n] + bit_value(fields[n], bit)
    changed[n] = true
  end
  local args = {}
  for n, field in ipairs(fields) do
    if changed[n] then
      args[#args + 1] = 'SET'
      args[#args + 1] = 'u' .. field[2]
      args[#args + 1] = field[1]
      args[#args + 1] = string.format('%.0f', values[n])
      if #args >= 4000 then
        redis.call('BITFIELD', key, unpack(args))
        args = {}
      end
    end
  end
  if #args > 0 then
    redis.call('BITFIELD', key, unpack(args))
  end
end

-- The run state as clients see it: the guide's five fields plus ours. (HMGET of just these:
-- this runs on every count, and the hash holds twice as many fields.) `running` is not stored:
-- it is derived here from status, true while the run has not ended (running or paused).
local function state_json(run_key)
  local f = redis.call('HMGET', run_key, 'runId', 'status', 'xTotal', 'yMinute', 'enqueued',
    'processed', 'failed', 'startedAt', 'finishedAt', 'rateNow', 'heldBack', 'seq', 'pausedAt',
    'pausedMs', 'retried', 'webhook', 'rateEnqueued', 'throttled', 'heldBy', 'weight',
    'maxInFlight', 'deadline', 'shareRate', 'projectedFinish')
  if not f[1] then
    return nil
  end
  local processed, failed = tonumber(f[6]), tonumber(f[7])
  local on_track = nil
  if f[22] then
    on_track = not f[24] or tonumber(f[24]) <= tonumber(f[22])
  end
  return cjson.encode({
    running = is_live(f[2]),
    xTotal = tonumber(f[3]),
    yMinute = tonumber(f[4]),
    -- the tick confirms what it sent every 10 jobs, after sending: a worker can finish a job
    -- first, and a job that is done was certainly enqueued
    enqueued = math.max(tonumber(f[5]), processed + failed),
    processed = processed,
    failed = failed,
    runId = f[1],
    status = f[2],
    startedAt = tonumber(f[8]),
    finishedAt = f[9] and tonumber(f[9]) or cjson.null,
    rateNow = tonumber(f[10] or '0'),
    heldBack = f[11] == '1',
    heldBackBy = (f[11] == '1' and f[19]) or cjson.null,
    seq = tonumber(f[12] or '0'),
    pausedAt = f[13] and tonumber(f[13]) or cjson.null,
    pausedMs = tonumber(f[14] or '0'),
    retried = tonumber(f[15] or '0'),
    webhook = f[16] or cjson.null,
    rateEnqueued = tonumber(f[17] or '0'),
    throttled = tonumber(f[18] or '0'),
    weight = tonumber(f[20] or '1'),
    maxInFlight = tonumber(f[21] or '0'),
    -- the rate the deployment's ceiling (OPTIO_MAX_RATE) grants the run now: its fair share;
    -- absent while no ceiling binds it (optio/worker/shares.py)
    shareRate = f[23] and tonumber(f[23]) or nil,
    -- a deadline run (its rate derived from the jobs left and the time left): whether it
    -- finishes by its deadline at the rate it gets, and when it would
    deadline = f[22] and tonumber(f[22]) or nil,
    onTrack = on_track,
    projectedFinish = f[24] and tonumber(f[24]) or nil,
  })
end

-- A change of the run: count it in `seq`, and publish the state once: on the progress channel
-- (the guide's) when it is the run clients are shown by default (current_key holds its id),
-- else on the channel of the other runs' states. The web's relay listens to both.
local function publish_state(run_key, current_key, run_id)
  redis.call('HINCRBY', run_key, 'seq', 1)
  local channel = OPTIO_STATES_CHANNEL
  if redis.call('GET', current_key) == run_id then
    channel = OPTIO_CHANNEL
  end
  redis.call('PUBLISH', channel, state_json(run_key))
end

-- A run that is not running keeps its keys for OPTIO_RUN_TTL (results: OPTIO_RESULT_TTL); its
-- messages, leases and the jobs' owning messages are dropped. Called when a run ends and after
-- any late write to it.
local function expire_run(run_key, done_key, results_key, errors_key, attempts_key,
    messages_key, holders_key, owners_key, items_key)
  for _, key in ipairs({run_key, done_key, errors_key, attempts_key, items_key}) do
    redis.call('EXPIRE', key, OPTIO_RUN_TTL)
  end
  redis.call('EXPIRE', results_key, OPTIO_RESULT_TTL)
  redis.call('DEL', messages_key, holders_key, owners_key)
end

-- Mark the run finished with the given status and take it off the active runs; a paused run's
-- pause ends with it. With a webhook configured at its start, its delivery is queued in the
-- outbox. The caller then expires the run's keys (expire_run).
local function finish_run(run_key, active_key, outbox_key, run_id, status, now)
  local f = redis.call('HMGET', run_key, 'pausedAt', 'hook')
  if f[1] then
    redis.call('HINCRBY', run_key, 'pausedMs', now - tonumber(f[1]))
    redis.call('HDEL', run_key, 'pausedAt')
  end
  redis.call('HSET', run_key, 'status', status, 'finishedAt', now,
    'heldBack', '0', 'leasedJobs', 0)
  if f[2] == '1' then
    redis.call('HSET', run_key, 'webhook', 'pending')
    redis.call('HDEL', run_key, 'webhookError', 'webhookAttempts')
    redis.call('ZADD', outbox_key, now, run_id)
  end
  redis.call('ZREM', active_key, run_id)
end

-- After jobs were counted: complete the run when every job is done (also while paused).
-- Returns whether the run has ended, now or before (a late write to a stopped run): the caller
-- then expires the run's keys (expire_run), so they keep expiring.
local function complete_if_done(run_key, active_key, outbox_key, run_id, now)
  local f = redis.call('HMGET', run_key, 'status', 'processed', 'failed', 'xTotal')
  if is_live(f[1]) and tonumber(f[2]) + tonumber(f[3]) >= tonumber(f[4]) then
    finish_run(run_key, active_key, outbox_key, run_id, 'completed', now)
    return true
  end
  return not is_live(f[1])
end

-- Jobs left in a lease whose holders-hash value is `holder`, when `token` holds it; else nil.
local function lease_left(holder, token)
  if not holder then
    return nil
  end
  local sep = string.find(holder, ':', 1, true)
  if string.sub(holder, 1, sep - 1) ~= token then
    return nil
  end
  return tonumber(string.sub(holder, sep + 1))
end

-- Give up the lease record of message `key` (whoever holds it): its jobs are no longer leased.
local function drop_holder(run_key, holders_key, key)
  local holder = redis.call('HGET', holders_key, key)
  if holder then
    local sep = string.find(holder, ':', 1, true)
    local left = tonumber(string.sub(holder, sep + 1))
    if left ~= 0 then  -- (HINCRBY refuses the "-0" that negating 0 gives)
      redis.call('HINCRBY', run_key, 'leasedJobs', -left)
    end
    redis.call('HDEL', holders_key, key)
  end
end

-- Count job `job` as failed for good with `error`, unless it is counted already (its done bit):
-- its error, its record "<now>|<ms>|" in results_key (`now` ms; `ms` the run time of its last
-- attempt, '' when unknown; optio/store/outcomes.py), the run's failed count, failed_total; no
-- message owns it any more. Returns 1 when counted now, else 0. The caller then completes the
-- run when every job is done (complete_if_done) and publishes the state.
local function count_failed(run_key, done_key, results_key, errors_key, owners_key, metrics_key,
    job, error, ms, now)
  if redis.call('GETBIT', done_key, job) == 1 then
    return 0
  end
  -- the error before the bit, the metrics last: a script that fails midway has not counted the
  -- job (Redis does not undo the writes made before a failure)
  redis.call('HSET', errors_key, job, error)
  redis.call('HSET', results_key, job, string.format('%.0f|', now) .. ms .. '|')
  redis.call('SETBIT', done_key, job, 1)
  redis.call('HDEL', owners_key, job)
  redis.call('HINCRBY', run_key, 'failed', 1)
  redis.call('HINCRBY', metrics_key, 'failed_total', 1)
  return 1
end

-- The lease on message `key` ran out (its holder died, froze or lost Redis; the caller has
-- dropped the holder). The expiries of a message are counted in the attempts hash, field
-- "expired:<message key>". At the `most`-th (OPTIO_MAX_DELIVERIES) the message is given up: it
-- leaves the messages zset and its jobs not counted yet are counted as failed for good
-- (count_failed), with the error "delivered <most> times without finishing: ...". Returns how
-- many jobs it failed (0 when all were done already), or nil while the message is to be sent
-- again (`now`: ms, for the failed jobs' records). The caller then completes the run when every
-- job is done and publishes the state.
local function lease_expired(run_key, done_key, results_key, errors_key, attempts_key,
    messages_key, owners_key, metrics_key, key, most, now)
  local field = 'expired:' .. key
  if redis.call('HINCRBY', attempts_key, field, 1) < most then
    return nil
  end
  redis.call('HDEL', attempts_key, field)  -- a later retry-failed of its jobs starts afresh
  redis.call('ZREM', messages_key, key)
  local error = 'delivered ' .. most .. ' times without finishing: its worker died, froze or '
    .. 'lost Redis each time (OPTIO_MAX_DELIVERIES)'
  local first, count = string.match(key, '^(%d+):(%d+)')
  local failed = 0
  for job = tonumber(first), tonumber(first) + tonumber(count) - 1 do
    local owner = redis.call('HGET', owners_key, job)
    if not owner or owner == key then  -- a job another message owns is that message's to end
      failed = failed + count_failed(run_key, done_key, results_key, errors_key, owners_key,
        metrics_key, job, error, '', now)
    end
  end
  return failed
end

-- The renewal of renew_leases and renew_owned: ARGV[1] lease ms, ARGV[2] now ms, then pairs of
-- message key and holder (a token, or an owner id). The deadline of each message whose
-- holders-hash entry `holds(entry, holder)` accepts moves to now + lease, while the run has not
-- ended. Returns {status, message key not renewed, ...}.
local function renew_held(run_key, holders_key, messages_key, holds)
  local status = redis.call('HGET', run_key, 'status') or 'gone'
  local out = {status}
  local deadline = now_ms(ARGV[2]) + tonumber(ARGV[1])
  for i = 3, #ARGV, 2 do
    if is_live(status) and holds(redis.call('HGET', holders_key, ARGV[i]), ARGV[i + 1]) then
      redis.call('ZADD', messages_key, deadline, ARGV[i])
    else
      out[#out + 1] = ARGV[i]
    end
  end
  return out
end

-- The keys, bound once (names.script_keys; the order of the list above).
if #KEYS ~= OPTIO_KEY_COUNT then
  return redis.error_reply('optio: a script takes the ' .. OPTIO_KEY_COUNT ..
    ' keys of names.script_keys, not ' .. #KEYS)
end
local run_key, done_key, results_key, errors_key, attempts_key, messages_key, holders_key,
  owners_key, items_key, active_key, current_key, last_tick_key, runs_key, outbox_key,
  metrics_key = unpack(KEYS)
