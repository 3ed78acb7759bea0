-- Shared helpers, put in front of every script by optio/redis_state.py.
-- The loader defines OPTIO_CHANNEL (the pub/sub channel) just above this text.

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

-- The run state as clients see it: the guide's five fields plus ours.
local function state_json(run_key)
  local h = hgetall(run_key)
  if h.runId == nil then
    return nil
  end
  return cjson.encode({
    running = h.running == '1',
    xTotal = tonumber(h.xTotal),
    yMinute = tonumber(h.yMinute),
    -- the tick confirms what it sent every 10 jobs, after sending: a worker can finish a job
    -- first, and a job that is done was certainly enqueued
    enqueued = math.max(tonumber(h.enqueued), tonumber(h.processed) + tonumber(h.failed)),
    processed = tonumber(h.processed),
    failed = tonumber(h.failed),
    runId = h.runId,
    status = h.status,
    startedAt = tonumber(h.startedAt),
    finishedAt = h.finishedAt and tonumber(h.finishedAt) or cjson.null,
  })
end

-- Publish the run's state, only when it is the run clients are watching.
local function publish_state(run_key, current_key, run_id)
  if redis.call('GET', current_key) == run_id then
    redis.call('PUBLISH', OPTIO_CHANNEL, state_json(run_key))
  end
end

-- Mark the run finished with the given status and release the active slot.
local function finish_run(run_key, active_key, run_id, status, now)
  redis.call('HSET', run_key, 'running', '0', 'status', status, 'finishedAt', now)
  if redis.call('GET', active_key) == run_id then
    redis.call('DEL', active_key)
  end
end

-- After a job was counted: note the progress, and complete the run when every job is done.
local function complete_if_done(run_key, active_key, run_id, now)
  redis.call('HSET', run_key, 'progressAt', now)
  local f = redis.call('HMGET', run_key, 'status', 'processed', 'failed', 'xTotal')
  if f[1] == 'running' and tonumber(f[2]) + tonumber(f[3]) >= tonumber(f[4]) then
    finish_run(run_key, active_key, run_id, 'completed', now)
  end
end
