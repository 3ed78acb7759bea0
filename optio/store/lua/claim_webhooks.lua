-- Claim the completion webhooks that are due, for one deliverer: each claimed run's deadline
-- moves to now + ARGV[2], so no other tick claims it while this delivery runs (a deliverer
-- that dies mid-delivery loses the claim when it runs out).
-- KEYS[1] webhook outbox zset (run id -> due ms)
-- ARGV[1] now ms ('' = Redis clock)   ARGV[2] claim ms   ARGV[3] most runs to claim
-- Returns the claimed run ids.
local now = now_ms(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, run_id in ipairs(due) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), run_id)
end
return due
