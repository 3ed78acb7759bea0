-- Extend the leases a worker holds, and tell it which it lost.
-- A lease is lost when another delivery or the tick took it (it had expired) or the run ended;
-- the worker stops running that message's jobs. A paused run's leases are renewed: its workers
-- finish the job at hand, then park the rest.
-- Keys: reads run_key, holders_key; writes messages_key.
-- ARGV[1] lease ms
-- ARGV[2] now ms ('' = Redis clock)
-- ARGV[3], ARGV[4], ...: message key, token, message key, token, ...
-- Returns {status, lost message key, ...}: status is the run's ('gone' when unknown).
local status = redis.call('HGET', run_key, 'status') or 'gone'
local out = {status}
local deadline = now_ms(ARGV[2]) + tonumber(ARGV[1])
for i = 3, #ARGV, 2 do
  if is_live(status) and lease_left(redis.call('HGET', holders_key, ARGV[i]), ARGV[i + 1]) then
    redis.call('ZADD', messages_key, deadline, ARGV[i])
  else
    out[#out + 1] = ARGV[i]
  end
end
return out
