-- Shared helpers, put in front of every script by optio/redis_state.py. The loader defines, just
-- above this text: OPTIO_CHANNEL (the pub/sub channel), OPTIO_RUN_TTL and OPTIO_RESULT_TTL
-- (seconds a finished run's keys and its results are kept).
--
-- Every script that works on one run takes that run's keys first, in this order
-- (names.run_keys; optio/names.py lists every key and every run-hash field with its meaning):
--   KEYS[1] run hash   KEYS[2] done bitmap   KEYS[3] results hash   KEYS[4] errors hash
--   KEYS[5] attempts hash   KEYS[6] messages zset   KEYS[7] holders hash
-- A message key is "first:count" (jobs first .. first+count-1) or "job:1:rN" (retry N of a job).
-- Scripts that can end a run (finish_run) also take KEYS[10], the webhook outbox zset, and
-- scripts that count jobs KEYS[11], the metrics hash (totals over all runs, for /metrics).

-- Deadline of a parked message (see names.py, messages zset): a score no clock reaches.
local PARKED = 9e15

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

-- The run state as clients see it: the guide's five fields plus ours. (HMGET of just these:
-- this runs on every count, and the hash holds twice as many fields.) `running` is not stored:
-- it is derived here from status, true while the run has not ended (running or paused).
local function state_json(run_key)
  local f = redis.call('HMGET', run_key, 'runId', 'status', 'xTotal', 'yMinute', 'enqueued',
    'processed', 'failed', 'startedAt', 'finishedAt', 'rateNow', 'heldBack', 'seq', 'pausedAt',
    'pausedMs', 'retried', 'webhook', 'rateEnqueued', 'throttled')
  if not f[1] then
    return nil
  end
  local processed, failed = tonumber(f[6]), tonumber(f[7])
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
    seq = tonumber(f[12] or '0'),
    pausedAt = f[13] and tonumber(f[13]) or cjson.null,
    pausedMs = tonumber(f[14] or '0'),
    retried = tonumber(f[15] or '0'),
    webhook = f[16] or cjson.null,
    rateEnqueued = tonumber(f[17] or '0'),
    throttled = tonumber(f[18] or '0'),
  })
end

-- A change of the run: count it in `seq`, and publish the state when clients watch this run.
local function publish_state(run_key, current_key, run_id)
  redis.call('HINCRBY', run_key, 'seq', 1)
  if redis.call('GET', current_key) == run_id then
    redis.call('PUBLISH', OPTIO_CHANNEL, state_json(run_key))
  end
end

-- A run that is not running keeps its keys for OPTIO_RUN_TTL (results: OPTIO_RESULT_TTL); its
-- messages and leases are dropped. Called when a run ends and after any late write to it.
local function expire_run()
  for _, i in ipairs({1, 2, 4, 5}) do
    redis.call('EXPIRE', KEYS[i], OPTIO_RUN_TTL)
  end
  redis.call('EXPIRE', KEYS[3], OPTIO_RESULT_TTL)
  redis.call('DEL', KEYS[6], KEYS[7])
end

-- Mark the run finished with the given status and release the active slot; a paused run's
-- pause ends with it. With a webhook configured at its start, its delivery is queued in the
-- outbox (KEYS[10]).
local function finish_run(active_key, run_id, status, now)
  local f = redis.call('HMGET', KEYS[1], 'pausedAt', 'hook')
  if f[1] then
    redis.call('HINCRBY', KEYS[1], 'pausedMs', now - tonumber(f[1]))
    redis.call('HDEL', KEYS[1], 'pausedAt')
  end
  redis.call('HSET', KEYS[1], 'status', status, 'finishedAt', now,
    'heldBack', '0', 'leasedJobs', 0)
  if f[2] == '1' then
    redis.call('HSET', KEYS[1], 'webhook', 'pending')
    redis.call('HDEL', KEYS[1], 'webhookError', 'webhookAttempts')
    redis.call('ZADD', KEYS[10], now, run_id)
  end
  if redis.call('GET', active_key) == run_id then
    redis.call('DEL', active_key)
  end
  expire_run()
end

-- After jobs were counted: complete the run when every job is done (also while paused).
local function complete_if_done(active_key, run_id, now)
  local f = redis.call('HMGET', KEYS[1], 'status', 'processed', 'failed', 'xTotal')
  if is_live(f[1]) and tonumber(f[2]) + tonumber(f[3]) >= tonumber(f[4]) then
    finish_run(active_key, run_id, 'completed', now)
  elseif not is_live(f[1]) then
    expire_run()  -- a late write to a stopped run: keep its keys expiring
  end
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
local function drop_holder(key)
  local holder = redis.call('HGET', KEYS[7], key)
  if holder then
    local sep = string.find(holder, ':', 1, true)
    local left = tonumber(string.sub(holder, sep + 1))
    if left ~= 0 then  -- (HINCRBY refuses the "-0" that negating 0 gives)
      redis.call('HINCRBY', KEYS[1], 'leasedJobs', -left)
    end
    redis.call('HDEL', KEYS[7], key)
  end
end
