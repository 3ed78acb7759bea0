-- Count jobs as enqueued once their messages are in the broker.
-- KEYS[1] run hash   KEYS[2] current (watched) run id
-- ARGV[1] run id   ARGV[2] how many jobs were just enqueued
-- Returns the run's new enqueued count (0 when the run does not exist). Never exceeds what
-- was reserved, so a confirmation retried after a lost reply cannot overcount.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local h = hgetall(KEYS[1])
local enqueued = math.min(tonumber(h.enqueued) + tonumber(ARGV[2]), tonumber(h.reserved))
redis.call('HSET', KEYS[1], 'enqueued', enqueued)
publish_state(KEYS[1], KEYS[2], ARGV[1])
return enqueued
