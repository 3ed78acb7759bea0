-- Count jobs as enqueued once their messages are in the broker.
-- KEYS[1..7] the run's keys (see _prelude.lua)   KEYS[8] current (watched) run id
-- ARGV[1] run id   ARGV[2] how many newly reserved jobs were just enqueued (0 for messages
-- sent again)   ARGV[3], ...: keys of the messages just published
-- A published message waits in the broker and is nobody's concern until a worker leases it:
-- its deadline is removed (unless a worker leased it already).
-- Returns the run's new enqueued count (0 when the run does not exist). Never exceeds what
-- was reserved, so a confirmation retried after a lost reply cannot overcount.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
for i = 3, #ARGV do
  if redis.call('HEXISTS', KEYS[7], ARGV[i]) == 0 then
    redis.call('ZREM', KEYS[6], ARGV[i])
  end
end
local h = hgetall(KEYS[1])
if tonumber(ARGV[2]) == 0 then
  return tonumber(h.enqueued)
end
local enqueued = math.min(tonumber(h.enqueued) + tonumber(ARGV[2]), tonumber(h.reserved))
redis.call('HSET', KEYS[1], 'enqueued', enqueued)
publish_state(KEYS[1], KEYS[8], ARGV[1])
return enqueued
