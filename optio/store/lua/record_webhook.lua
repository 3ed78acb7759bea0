-- Record the outcome of one attempt to deliver a run's completion webhook.
-- Keys: reads current_key; writes run_key (webhook, webhookError, webhookAttempts, seq),
-- outbox_key.
-- ARGV[1] run id
-- ARGV[2] 'delivered' | 'failed' | 'retry'
-- ARGV[3] for 'retry': when the next attempt is due, ms since the epoch
-- ARGV[4] what went wrong ('' when delivered)
-- Returns the attempts made so far (0 when the run is gone). Publishes the state when the
-- delivery ended (delivered or failed).
if redis.call('EXISTS', run_key) == 0 then
  redis.call('ZREM', outbox_key, ARGV[1])
  return 0
end
local attempts = redis.call('HINCRBY', run_key, 'webhookAttempts', 1)
if ARGV[2] == 'retry' then
  redis.call('ZADD', outbox_key, tonumber(ARGV[3]), ARGV[1])
  redis.call('HSET', run_key, 'webhookError', ARGV[4])
  return attempts
end
redis.call('ZREM', outbox_key, ARGV[1])
redis.call('HSET', run_key, 'webhook', ARGV[2], 'webhookError', ARGV[4])
publish_state(run_key, current_key, ARGV[1])
return attempts
