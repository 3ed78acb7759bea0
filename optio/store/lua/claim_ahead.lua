-- Take the retries and throttle reruns of the active run that fall due within a look-ahead (a
-- paced tick sends each at its due time, as it sends newly reserved jobs, instead of a tick's
-- worth at once on the next tick: against a downstream that allows little burst, reruns sent
-- together are refused again). Only a "job:1:rN" message that no worker leases is taken; each
-- gets the deadline of its due time + ARGV[4] (unconfirmed until the tick confirms it, which
-- removes it): a tick that dies before sending it leaves it to claim_lost.
-- Keys: reads active_key, run_key, holders_key; writes messages_key.
-- ARGV[1] run id
-- ARGV[2] now ms ('' = Redis clock)
-- ARGV[3] look-ahead, ms: take what falls due after now and by now + this
-- ARGV[4] ms a taken message may stay unconfirmed after its due time
-- ARGV[5] most messages to take
-- Returns {now ms, message key, due ms, message key, due ms, ...} in due order ({now ms} when
-- the run is not the active one or not running).
local now = now_ms(ARGV[2])
if not is_active(active_key, ARGV[1]) or redis.call('HGET', run_key, 'status') ~= 'running' then
  return {now}
end
local out = {now}
local found = redis.call('ZRANGEBYSCORE', messages_key, '(' .. now, now + tonumber(ARGV[3]),
  'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[5]))
for i = 1, #found, 2 do
  local key, due = found[i], tonumber(found[i + 1])
  if string.find(key, ':1:r', 1, true) and redis.call('HEXISTS', holders_key, key) == 0 then
    redis.call('ZADD', messages_key, due + tonumber(ARGV[4]), key)
    out[#out + 1] = key
    out[#out + 1] = string.format('%.0f', due)
  end
end
return out
