-- Count jobs as enqueued once their messages are in the broker.
-- A published message waits in the broker and is nobody's concern until a worker leases it:
-- its deadline is removed (unless a worker leased or parked it already). The time is kept in the run's
-- sentAt: the lost-message repair (tick.py) waits a margin after the last publish.
-- Keys: reads holders_key, current_key; writes run_key (enqueued, sentAt, seq), messages_key.
-- ARGV[1] run id
-- ARGV[2] how many newly reserved jobs were just enqueued (0 for messages sent again)
-- ARGV[3], ARGV[4], ...: keys of the messages just published
-- Returns {the run's new enqueued count, its status} ({0, ''} when the run does not exist).
-- The count never exceeds what was reserved, so a confirmation retried after a lost reply cannot
-- overcount. Publishes the state when the count changed. A run that has ended (stopped while a
-- tick was publishing) keeps its final state: nothing is written.
local status = redis.call('HGET', run_key, 'status')
if not status then
  return {0, ''}
end
if not is_live(status) then
  return {tonumber(redis.call('HGET', run_key, 'enqueued')), status}
end
redis.call('HSET', run_key, 'sentAt', now_ms(''))
for i = 3, #ARGV do
  -- a message a worker leases is the worker's; one a worker parked already (it got the
  -- message while the run was paused, before this confirmation came: RabbitMQ confirms can
  -- take that long) stays parked, or nothing would send it again after the resume
  if redis.call('HEXISTS', holders_key, ARGV[i]) == 0 then
    local score = redis.call('ZSCORE', messages_key, ARGV[i])
    if score and tonumber(score) < PARKED then
      redis.call('ZREM', messages_key, ARGV[i])
    end
  end
end
local h = hgetall(run_key)
if tonumber(ARGV[2]) == 0 then
  return {tonumber(h.enqueued), status}
end
local enqueued = math.min(tonumber(h.enqueued) + tonumber(ARGV[2]), tonumber(h.reserved))
redis.call('HSET', run_key, 'enqueued', enqueued)
publish_state(run_key, current_key, ARGV[1])
return {enqueued, status}
