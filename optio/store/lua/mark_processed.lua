-- Count processed jobs of one leased message, once per job id, store their results, account
-- for the lease, and finish the run when all jobs are done.
-- A retry or rerun message ("job:1:rN") that stores its job's result ends the job's ownership
-- (owners_key); other messages never touch owners_key.
-- Keys: reads current_key; writes run_key, done_key, results_key, messages_key, holders_key,
-- owners_key, metrics_key (processed_total, the run-time histogram); when the run completes
-- (finish_run) active_key, outbox_key, and the run's keys expire (expire_run).
-- ARGV[1] run id
-- ARGV[2] now ms ('' = Redis clock)
-- ARGV[3] message key
-- ARGV[4] the worker's token
-- ARGV[5] jobs of the message handled since the last call (counted, failed or retried)
-- ARGV[6] 1 to release the lease (the message is done, or the run is paused: a message
--         released with jobs not handled while the run is paused is parked), else 0
-- ARGV[7] run times of the jobs executed since the last call, as "count,sum s,n0,n1,...": how
--         many fell in each bucket of redis_state.DURATION_BUCKETS ('' = none)
-- ARGV[8], ARGV[9], ...: job id, outcome, job id, outcome, ...: the outcome is "<ms>|<result>"
--         (optio/store/outcomes.py); each new job's record in results_key is it with the time
--         in front, "<finishedAt ms>|<ms>|<result>".
-- Returns {counted now, status, lost}: a job id counted before is skipped; status is the run's
-- ('gone' when unknown); lost is 1 when the caller no longer holds the lease (the tick re-sent
-- the message after it expired, another delivery took it over): it must not start more of its
-- jobs.
-- Publishes the state once when anything was counted.
local status = redis.call('HGET', run_key, 'status')
if status == false then
  return {0, 'gone', 1}
end
-- The results first: a write that fails (a key of the wrong type) fails before any other, so a
-- script that fails has counted nothing and left the lease as it was: the message runs again
-- once the lease runs out. Redis does not undo the writes of a script that fails midway.
-- One HSET for the records and one BITFIELD for the bits, whatever the number of jobs: a job's
-- run time, finish time and result are one field of the HSET, never a command of their own.
local jobs = {}
for i = 8, #ARGV, 2 do
  jobs[#jobs + 1] = tonumber(ARGV[i])
end
local unset = unset_among(done_key, jobs)
local new, stored = {}, {}
local now = #ARGV >= 8 and now_ms(ARGV[2])  -- (one TIME, only for a count that counts jobs)
local finished = now and string.format('%.0f|', now) or ''
for i = 8, #ARGV, 2 do
  local job = tonumber(ARGV[i])
  if unset[job] then
    unset[job] = nil  -- a job listed twice counts once
    new[#new + 1] = job
    stored[#stored + 1] = ARGV[i]
    stored[#stored + 1] = finished .. ARGV[i + 1]
  end
end
for i = 1, #stored, 2000 do
  redis.call('HSET', results_key, unpack(stored, i, math.min(i + 1999, #stored)))
end
set_bits(done_key, new)
if ARGV[8] and string.find(ARGV[3], ':r', 1, true) then
  redis.call('HDEL', owners_key, ARGV[8])  -- the one job of a retry or rerun: done, owned no more
end
local counted = #new
local lost = 1
local left = lease_left(redis.call('HGET', holders_key, ARGV[3]), ARGV[4])
if left ~= nil then
  lost = 0
  local handled = math.min(tonumber(ARGV[5]), left)
  if ARGV[6] == '1' then
    if status == 'paused' and handled < left then
      redis.call('ZADD', messages_key, PARKED, ARGV[3])  -- its other jobs run after resume
    else
      redis.call('ZREM', messages_key, ARGV[3])
    end
    handled = left
    redis.call('HDEL', holders_key, ARGV[3])
  else
    redis.call('HSET', holders_key, ARGV[3], ARGV[4] .. ':' .. (left - handled))
  end
  if handled ~= 0 then  -- (HINCRBY refuses the "-0" that negating 0 gives)
    redis.call('HINCRBY', run_key, 'leasedJobs', -handled)
  end
end
if #stored ~= 0 then
  redis.call('EXPIRE', results_key, OPTIO_RESULT_TTL)
end
if counted ~= 0 then
  redis.call('HINCRBY', run_key, 'processed', counted)
  if complete_if_done(run_key, active_key, outbox_key, ARGV[1], now) then
    expire_run(run_key, done_key, results_key, errors_key, attempts_key, messages_key,
      holders_key, owners_key, items_key)
  end
  publish_state(run_key, current_key, ARGV[1])
  status = redis.call('HGET', run_key, 'status')
end
-- the metrics last: they never stand in the way of a count
if counted ~= 0 then
  redis.call('HINCRBY', metrics_key, 'processed_total', counted)
end
if ARGV[7] ~= '' then
  local i = 0
  for part in string.gmatch(ARGV[7], '[^,]+') do
    if i == 0 then
      redis.call('HINCRBY', metrics_key, 'duration_count', part)
    elseif i == 1 then
      redis.call('HINCRBYFLOAT', metrics_key, 'duration_sum', part)
    elseif part ~= '0' then
      redis.call('HINCRBY', metrics_key, 'duration_bucket:' .. (i - 2), part)
    end
    i = i + 1
  end
end
return {counted, status, lost}
