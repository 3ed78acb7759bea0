-- Claim the completion webhooks that are due, for one deliverer: each claimed run's deadline
-- moves to now + ARGV[2], so no other tick claims it while this delivery runs (a deliverer
-- that dies mid-delivery loses the claim when it runs out).
-- Works on no single run: called with the keys of names.NO_RUN (see _prelude.lua).
-- Keys: reads and writes outbox_key.
-- ARGV[1] now ms ('' = Redis clock)
-- ARGV[2] ms a claim lasts
-- ARGV[3] most runs to claim
-- Returns the claimed run ids.
local now = now_ms(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', outbox_key, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, run_id in ipairs(due) do
  redis.call('ZADD', outbox_key, now + tonumber(ARGV[2]), run_id)
end
return due
