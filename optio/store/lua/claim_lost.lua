-- Take the messages of the active run that must be sent (again) now: those whose lease expired
-- (the worker died, froze or lost Redis for longer than the lease), retries that are due,
-- reservations never confirmed as published (the tick died between reserving and sending), and,
-- once the run runs again, the messages parked while it was paused.
-- A message waiting in the broker has no deadline and is never taken, however long it waits.
-- Each taken message gets a new deadline of now + ARGV[3] (unconfirmed again), so it is sent
-- once per expiry.
-- KEYS[1..7] the run's keys (see _prelude.lua)   KEYS[8] active run id
-- ARGV[1] run id   ARGV[2] now ms ('' = Redis clock)   ARGV[3] ms until a re-sent message that
-- is not confirmed is taken again   ARGV[4] most messages to take
-- Returns {expired leases among them, parked among them, message key, ...}.
if redis.call('GET', KEYS[8]) ~= ARGV[1] then
  return {0, 0}
end
local now = now_ms(ARGV[2])
local most = tonumber(ARGV[4])
local deadline = now + tonumber(ARGV[3])
local out = {0, 0}
if redis.call('HGET', KEYS[1], 'status') == 'running' then
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[6], PARKED, '+inf', 'LIMIT', 0, most)) do
    out[2] = out[2] + 1
    redis.call('ZADD', KEYS[6], deadline, key)
    out[#out + 1] = key
  end
end
if #out - 2 >= most then
  return out
end
for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0,
    most - (#out - 2))) do
  if redis.call('HEXISTS', KEYS[7], key) == 1 then
    out[1] = out[1] + 1
    drop_holder(key)
  end
  redis.call('ZADD', KEYS[6], deadline, key)
  out[#out + 1] = key
end
return out
