-- Run the failed jobs of a completed run again: the run is running again until each of them has
-- succeeded or spent a fresh set of attempts. They are sent at the run's rate y from now, as
-- messages "job:1:r-1" (names.RERUN) with spaced deadlines in the messages zset.
-- KEYS[1..7] the run's keys (see _prelude.lua)   KEYS[8] active run id
-- KEYS[9] current (watched) run id
-- ARGV[1] run id   ARGV[2] now ms ('' = Redis clock)
-- Returns {n} (jobs put back) or {0, reason, detail}: reason 'gone' (no such run), 'busy' (another
-- run is active: detail its id), 'not_completed' (detail the status), 'none' (no failed job).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {0, 'gone', ''}
end
local active = redis.call('GET', KEYS[8])
if active then
  return {0, 'busy', active}
end
if status ~= 'completed' then
  return {0, 'not_completed', status}
end
local jobs = redis.call('HKEYS', KEYS[4])
if #jobs == 0 then
  return {0, 'none', ''}
end
local now = now_ms(ARGV[2])
local spacing = 60000 / tonumber(redis.call('HGET', KEYS[1], 'yMinute'))
table.sort(jobs, function(a, b) return tonumber(a) < tonumber(b) end)
local args = {}
for i, job in ipairs(jobs) do
  redis.call('SETBIT', KEYS[2], job, 0)
  redis.call('HDEL', KEYS[5], job)
  args[#args + 1] = now + (i - 1) * spacing
  args[#args + 1] = job .. ':1:r-1'
end
zadd_pairs(KEYS[6], args)
redis.call('DEL', KEYS[4])
for i = 1, 5 do
  redis.call('PERSIST', KEYS[i])
end
redis.call('HINCRBY', KEYS[1], 'failed', -#jobs)
redis.call('HINCRBY', KEYS[1], 'retried', #jobs)
-- the time between its end and now was not spent running: rate figures leave it out
redis.call('HINCRBY', KEYS[1], 'pausedMs', now - tonumber(redis.call('HGET', KEYS[1], 'finishedAt')))
redis.call('HSET', KEYS[1], 'status', 'running', 'heldBack', '0')
redis.call('HDEL', KEYS[1], 'finishedAt', 'webhook', 'webhookError')
redis.call('SET', KEYS[8], ARGV[1])
redis.call('SET', KEYS[9], ARGV[1])
publish_state(KEYS[1], KEYS[9], ARGV[1])
return {#jobs}
