-- A job raised: schedule its retry, or count it as failed for good once its attempts are spent.
-- KEYS[1..7] the run's keys (see _prelude.lua)   KEYS[8] active run id
-- KEYS[9] current (watched) run id   KEYS[10] webhook outbox   KEYS[11] metrics hash
-- ARGV[1] run id   ARGV[2] job id   ARGV[3] error text   ARGV[4] attempts allowed
-- ARGV[5] ms before the first retry (doubles each attempt)   ARGV[6] most ms before a retry
-- ARGV[7] now ms ('' = Redis clock)
-- A retry is a message "job:1:rN" registered with its due time as deadline: the tick sends it
-- then (retries never wait in a worker's memory, where a dying worker would lose them).
-- Returns {outcome, attempts, retry delay ms}: outcome 'retry', 'failed', 'done' (counted
-- before: nothing to do) or 'ended' (the run has ended: nothing recorded). A paused run
-- records failures and schedules retries as a running one does (the tick sends a retry when
-- it is due; a worker parks it until the run resumes).
if not is_live(redis.call('HGET', KEYS[1], 'status')) then
  return {'ended', 0, 0}
end
local job = ARGV[2]
if redis.call('GETBIT', KEYS[2], job) == 1 then
  return {'done', 0, 0}
end
local attempts = redis.call('HINCRBY', KEYS[5], job, 1)
if attempts < tonumber(ARGV[4]) then
  local delay = math.min(tonumber(ARGV[5]) * 2 ^ (attempts - 1), tonumber(ARGV[6]))
  redis.call('ZADD', KEYS[6], now_ms(ARGV[7]) + delay, job .. ':1:r' .. attempts)
  redis.call('HINCRBY', KEYS[11], 'retried_total', 1)
  return {'retry', attempts, math.floor(delay)}
end
redis.call('SETBIT', KEYS[2], job, 1)
redis.call('HSET', KEYS[4], job, ARGV[3])
redis.call('HINCRBY', KEYS[1], 'failed', 1)
redis.call('HINCRBY', KEYS[11], 'failed_total', 1)
complete_if_done(KEYS[8], ARGV[1], now_ms(ARGV[7]))
publish_state(KEYS[1], KEYS[9], ARGV[1])
return {'failed', attempts, 0}
