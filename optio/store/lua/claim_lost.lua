-- Take the messages of the active run that must be sent (again) now: those whose lease expired
-- (the worker died, froze or lost Redis for longer than the lease), retries that are due,
-- reservations never confirmed as published (the tick died between reserving and sending), and,
-- once the run runs again, the messages parked while it was paused.
-- A message waiting in the broker has no deadline and is never taken, however long it waits.
-- Each taken message gets a new deadline of now + ARGV[3] (unconfirmed again), so it is sent
-- once per expiry.
-- Keys: reads active_key; reads and writes run_key (leasedJobs), messages_key, holders_key.
-- ARGV[1] run id
-- ARGV[2] now ms ('' = Redis clock)
-- ARGV[3] ms until a re-sent message that is not confirmed is taken again
-- ARGV[4] most messages to take
-- Returns {expired leases among them, parked among them, message key, ...}.
if redis.call('GET', active_key) ~= ARGV[1] then
  return {0, 0}
end
local now = now_ms(ARGV[2])
local most = tonumber(ARGV[4])
local deadline = now + tonumber(ARGV[3])
local out = {0, 0}
if redis.call('HGET', run_key, 'status') == 'running' then
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', messages_key, PARKED, '+inf', 'LIMIT', 0,
      most)) do
    out[2] = out[2] + 1
    redis.call('ZADD', messages_key, deadline, key)
    out[#out + 1] = key
  end
end
if #out - 2 >= most then
  return out
end
for _, key in ipairs(redis.call('ZRANGEBYSCORE', messages_key, '-inf', now, 'LIMIT', 0,
    most - (#out - 2))) do
  if redis.call('HEXISTS', holders_key, key) == 1 then
    out[1] = out[1] + 1
    drop_holder(run_key, holders_key, key)
  end
  redis.call('ZADD', messages_key, deadline, key)
  out[#out + 1] = key
end
return out
