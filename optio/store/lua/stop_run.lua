-- Stop the active run: nothing more is enqueued; workers skip its queued jobs and stop running
-- the rest of a started message at their next flush.
-- KEYS[1..7] the run's keys (see _prelude.lua)   KEYS[8] active run id
-- KEYS[9] current (watched) run id   KEYS[10] webhook outbox   KEYS[11] metrics (unused)
-- ARGV[1] run id   ARGV[2] now ms ('' = Redis clock)
-- Returns 1 when stopped, 0 when that run is not active.
if redis.call('GET', KEYS[8]) ~= ARGV[1] then
  return 0
end
finish_run(KEYS[8], ARGV[1], 'stopped', now_ms(ARGV[2]))
publish_state(KEYS[1], KEYS[9], ARGV[1])
return 1
