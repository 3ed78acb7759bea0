-- Stop the active run: nothing more is enqueued and queued jobs of it are skipped.
-- KEYS[1] active run id   KEYS[2] run hash   KEYS[3] current (watched) run id
-- ARGV[1] run id   ARGV[2] now ms ('' = Redis clock)
-- Returns 1 when stopped, 0 when that run is not active.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
finish_run(KEYS[2], KEYS[1], ARGV[1], 'stopped', now_ms(ARGV[2]))
publish_state(KEYS[2], KEYS[3], ARGV[1])
return 1
