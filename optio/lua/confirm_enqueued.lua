-- Count jobs as enqueued once their messages are in the broker.
-- KEYS[1] run hash   KEYS[2] current (watched) run id
-- ARGV[1] run id   ARGV[2] how many jobs were just enqueued
-- Returns the run's new enqueued count (0 when the run does not exist).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local enqueued = redis.call('HINCRBY', KEYS[1], 'enqueued', ARGV[2])
publish_state(KEYS[1], KEYS[2], ARGV[1])
return enqueued
