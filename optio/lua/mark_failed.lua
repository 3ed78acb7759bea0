-- Count one job as failed for good (its retries are spent), once per job id, with its error.
-- KEYS[1] run hash   KEYS[2] done bitmap   KEYS[3] errors hash   KEYS[4] active run id
-- KEYS[5] current (watched) run id
-- ARGV[1] run id   ARGV[2] job id   ARGV[3] error text   ARGV[4] TTL seconds of the errors
-- ARGV[5] now ms ('' = Redis clock)
-- Returns 1 when counted, 0 when the job id was counted before, -1 when the run is unknown.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
if redis.call('SETBIT', KEYS[2], ARGV[2], 1) == 1 then
  return 0
end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('HINCRBY', KEYS[1], 'failed', 1)
complete_if_done(KEYS[1], KEYS[4], ARGV[1], now_ms(ARGV[5]))
publish_state(KEYS[1], KEYS[5], ARGV[1])
return 1
