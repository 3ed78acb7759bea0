-- A job raised: schedule its retry, or count it as failed for good once its attempts are spent.
-- A retry is a message "job:1:rN" registered with its due time as deadline: the tick sends it
-- then (retries never wait in a worker's memory, where a dying worker would lose them). A paused
-- run records failures and schedules retries as a running one does (the tick sends a retry when
-- it is due; a worker parks it until the run resumes).
-- The retry message owns the job from now (owners_key): no other message leases it, and its own
-- next retry takes it over; a job that failed for good has no owner.
-- Keys: reads current_key; writes run_key, done_key, results_key (the job's record when it fails
-- for good), errors_key, attempts_key, messages_key, owners_key, metrics_key (retried_total,
-- failed_total); when the run completes (finish_run) active_key, outbox_key, and the run's keys
-- expire (expire_run).
-- ARGV[1] run id
-- ARGV[2] job id
-- ARGV[3] error text
-- ARGV[4] attempts allowed
-- ARGV[5] ms before the first retry (doubles each attempt)
-- ARGV[6] most ms before a retry
-- ARGV[7] now ms ('' = Redis clock)
-- ARGV[8] ms the attempt ran ('' = unknown), kept in the job's record when it fails for good
-- Returns {outcome, attempts, retry delay ms}: outcome 'retry', 'failed', 'done' (counted
-- before: nothing to do) or 'ended' (the run has ended: nothing recorded). Publishes the state
-- when the job failed for good.
if not is_live(redis.call('HGET', run_key, 'status')) then
  return {'ended', 0, 0}
end
local job = ARGV[2]
if redis.call('GETBIT', done_key, job) == 1 then
  return {'done', 0, 0}
end
local attempts = redis.call('HINCRBY', attempts_key, job, 1)
if attempts < tonumber(ARGV[4]) then
  local delay = math.min(tonumber(ARGV[5]) * 2 ^ (attempts - 1), tonumber(ARGV[6]))
  local retry = job .. ':1:r' .. attempts
  redis.call('ZADD', messages_key, now_ms(ARGV[7]) + delay, retry)
  redis.call('HSET', owners_key, job, retry)
  redis.call('HINCRBY', metrics_key, 'retried_total', 1)
  return {'retry', attempts, math.floor(delay)}
end
local now = now_ms(ARGV[7])
count_failed(run_key, done_key, results_key, errors_key, owners_key, metrics_key, job, ARGV[3],
  ARGV[8] or '', now)
if complete_if_done(run_key, active_key, outbox_key, ARGV[1], now) then
  expire_run(run_key, done_key, results_key, errors_key, attempts_key, messages_key, holders_key,
    owners_key, items_key)
end
publish_state(run_key, current_key, ARGV[1])
return {'failed', attempts, 0}
