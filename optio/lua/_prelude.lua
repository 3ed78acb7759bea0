-- Shared helpers, put in front of every script by optio/redis_state.py. The loader defines, just
-- above this text: OPTIO_CHANNEL (the pub/sub channel), OPTIO_RUN_TTL and OPTIO_RESULT_TTL
-- (seconds a finished run's keys and its results are kept).
--
-- Every script that works on one run takes that run's keys first, in this order
-- (names.run_keys; optio/names.py lists every key and every run-hash field with its meaning):
--   KEYS[1] run hash   KEYS[2] done bitmap   KEYS[3] results hash   KEYS[4] errors hash
--   KEYS[5] attempts hash   KEYS[6] messages zset   KEYS[7] holders hash
-- A message key is "first:count" (jobs first .. first+count-1) or "job:1:rN" (retry N of a job).

-- Milliseconds since the epoch: the caller's value when given (tests), else the Redis
-- server's clock, so every machine of a deployment shares one clock.
local function now_ms(arg)
  if arg ~= nil and arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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
-- it is derived here from status, true exactly when the run is running.
local function state_json(run_key)
  local f = redis.call('HMGET', run_key, 'runId', 'status', 'xTotal', 'yMinute', 'enqueued',
    'processed', 'failed', 'startedAt', 'finishedAt', 'rateNow', 'heldBack')
  if not f[1] then
    return nil
  end
  local processed, failed = tonumber(f[6]), tonumber(f[7])
  return cjson.encode({
    running = f[2] == 'running',
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
  })
end

-- Publish the run's state, only when it is the run clients are watching.
local function publish_state(run_key, current_key, run_id)
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

-- Mark the run finished with the given status and release the active slot.
local function finish_run(active_key, run_id, status, now)
  redis.call('HSET', KEYS[1], 'status', status, 'finishedAt', now,
    'heldBack', '0', 'leasedJobs', 0)
  if redis.call('GET', active_key) == run_id then
    redis.call('DEL', active_key)
  end
  expire_run()
end

-- After jobs were counted: complete the run when every job is done.
local function complete_if_done(active_key, run_id, now)
  local f = redis.call('HMGET', KEYS[1], 'status', 'processed', 'failed', 'xTotal')
  if f[1] == 'running' and tonumber(f[2]) + tonumber(f[3]) >= tonumber(f[4]) then
    finish_run(active_key, run_id, 'completed', now)
  elseif f[1] ~= 'running' then
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
