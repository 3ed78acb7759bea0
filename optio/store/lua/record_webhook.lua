-- Record the outcome of one attempt to deliver a run's completion webhook.
-- KEYS[1] run hash   KEYS[2] webhook outbox zset   KEYS[3] current (watched) run id
-- ARGV[1] run id   ARGV[2] 'delivered' | 'failed' | 'retry'   ARGV[3] for 'retry': ms when
-- the next attempt is due   ARGV[4] what went wrong ('' when delivered)
-- Returns the attempts made so far (0 when the run is gone).
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
local attempts = redis.call('HINCRBY', KEYS[1], 'webhookAttempts', 1)
if ARGV[2] == 'retry' then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[1])
  redis.call('HSET', KEYS[1], 'webhookError', ARGV[4])
  return attempts
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'webhook', ARGV[2], 'webhookError', ARGV[4])
publish_state(KEYS[1], KEYS[3], ARGV[1])
return attempts
