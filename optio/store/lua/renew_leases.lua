-- Extend the leases a worker holds, and tell it which it lost.
-- KEYS[1..7] the run's keys (see _prelude.lua)
-- ARGV[1] lease ms   ARGV[2] now ms ('' = Redis clock)
-- ARGV[3], ARGV[4], ...: message key, token, message key, token, ...
-- Returns {status, lost message key, ...}: a lease is lost when another delivery or the tick
-- took it (it had expired) or the run ended; the worker stops running that message's jobs.
-- A paused run's leases are renewed: its workers finish the job at hand, then park the rest.
local status = redis.call('HGET', KEYS[1], 'status') or 'gone'
local out = {status}
local deadline = now_ms(ARGV[2]) + tonumber(ARGV[1])
for i = 3, #ARGV, 2 do
  if is_live(status) and lease_left(redis.call('HGET', KEYS[7], ARGV[i]), ARGV[i + 1]) then
    redis.call('ZADD', KEYS[6], deadline, ARGV[i])
  else
    out[#out + 1] = ARGV[i]
  end
end
return out
