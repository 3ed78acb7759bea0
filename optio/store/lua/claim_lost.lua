-- Take the messages of the active run that must be sent (again) now: those whose lease expired
-- (the worker died, froze or lost Redis for longer than the lease), retries that are due,
-- reservations never confirmed as published (the tick died between reserving and sending), and,
-- once the run runs again, the messages parked while it was paused.
-- A message waiting in the broker has no deadline and is never taken, however long it waits.
-- Each taken message gets a new deadline of now + ARGV[3] (unconfirmed again), so it is sent
-- once per expiry. A message whose lease expired for the ARGV[5]-th time is given up instead
-- (lease_expired): its jobs not done yet are counted as failed for good.
-- Keys: reads active_key, current_key; reads and writes run_key (leasedJobs; failed),
-- messages_key, holders_key, attempts_key (the expiries, field "expired:<message key>"); when
-- a message is given up also done_key, results_key, errors_key, metrics_key (failed_total), and
-- when that completes the run (finish_run) active_key, outbox_key, and the run's keys expire
-- (expire_run).
-- ARGV[1] run id
-- ARGV[2] now ms ('' = Redis clock)
-- ARGV[3] ms until a re-sent message that is not confirmed is taken again
-- ARGV[4] most messages to take
-- ARGV[5] expiries of a message's lease that give it up (OPTIO_MAX_DELIVERIES)
-- Returns {expired leases among them, parked among them, messages given up, jobs failed by
-- them, message key, ...}. Publishes the state when jobs were failed so.
if not is_active(active_key, ARGV[1]) then
  return {0, 0, 0, 0}
end
local now = now_ms(ARGV[2])
local most = tonumber(ARGV[4])
local deadline = now + tonumber(ARGV[3])
local out = {0, 0, 0, 0}
if redis.call('HGET', run_key, 'status') == 'running' then
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', messages_key, PARKED, '+inf', 'LIMIT', 0,
      most)) do
    out[2] = out[2] + 1
    redis.call('ZADD', messages_key, deadline, key)
    out[#out + 1] = key
  end
end
if #out - 4 >= most then
  return out
end
for _, key in ipairs(redis.call('ZRANGEBYSCORE', messages_key, '-inf', now, 'LIMIT', 0,
    most - (#out - 4))) do
  local expired = redis.call('HEXISTS', holders_key, key) == 1
  local failed = nil
  if expired then
    drop_holder(run_key, holders_key, key)
    failed = lease_expired(run_key, done_key, results_key, errors_key, attempts_key,
      messages_key, owners_key, metrics_key, key, tonumber(ARGV[5]), now)
  end
  if failed then
    out[3] = out[3] + 1
    out[4] = out[4] + failed
  else
    if expired then
      out[1] = out[1] + 1
    end
    redis.call('ZADD', messages_key, deadline, key)
    out[#out + 1] = key
  end
end
if out[4] == 0 then
  return out
end
if complete_if_done(run_key, active_key, outbox_key, ARGV[1], now) then
  expire_run(run_key, done_key, results_key, errors_key, attempts_key, messages_key, holders_key,
    owners_key, items_key)
  out = {out[1], out[2], out[3], out[4]}  -- every job is done: nothing to send
end
publish_state(run_key, current_key, ARGV[1])
return out
