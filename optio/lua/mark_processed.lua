-- Count processed jobs, once per job id, store their results, finish the run when all are done.
-- KEYS[1] run hash   KEYS[2] done bitmap   KEYS[3] results hash   KEYS[4] active run id
-- KEYS[5] current (watched) run id
-- ARGV[1] run id   ARGV[2] result TTL seconds   ARGV[3] now ms ('' = Redis clock)
-- ARGV[4], ARGV[5], ...: job id, result, job id, result, ...
-- Returns how many of the jobs were counted now (a job id counted before is skipped),
-- or -1 when the run is unknown. Publishes the state once when anything was counted.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local counted = 0
for i = 4, #ARGV, 2 do
  if redis.call('SETBIT', KEYS[2], ARGV[i], 1) == 0 then
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
    counted = counted + 1
  end
end
if counted == 0 then
  return 0
end
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('HINCRBY', KEYS[1], 'processed', counted)
complete_if_done(KEYS[1], KEYS[4], ARGV[1], now_ms(ARGV[3]))
publish_state(KEYS[1], KEYS[5], ARGV[1])
return counted
