-- Count one job as processed, once per job id, store its result, finish the run when all are done.
-- KEYS[1] run hash   KEYS[2] done bitmap   KEYS[3] results hash   KEYS[4] active run id
-- KEYS[5] current (watched) run id
-- ARGV[1] run id   ARGV[2] job id   ARGV[3] result   ARGV[4] result TTL seconds
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
redis.call('HINCRBY', KEYS[1], 'processed', 1)
complete_if_done(KEYS[1], KEYS[4], ARGV[1], now_ms(ARGV[5]))
publish_state(KEYS[1], KEYS[5], ARGV[1])
return 1
