-- Run the failed jobs of a completed run again: the run is running again until each of them has
-- succeeded or spent a fresh set of attempts. They are sent at the run's rate y from now, as
-- messages "job:1:r-1" (names.RERUN) with spaced deadlines in the messages zset; each owns its
-- job (owners_key), so a late copy of the job's first message runs nothing. Each job keeps its
-- record in results_key until its new outcome replaces it: with its bit cleared and its error
-- gone, the export lists it as pending meanwhile (optio/store/outcomes.py).
-- Keys: reads and writes run_key, errors_key (emptied); writes active_key (the run added),
-- current_key (set to the run); writes done_key, attempts_key, messages_key, owners_key; run_key, done_key, results_key,
-- attempts_key and items_key stop expiring (PERSIST) while the run runs again.
-- ARGV[1] run id
-- ARGV[2] now ms ('' = Redis clock)
-- Returns {n} (jobs put back; publishes the state) or {0, reason, detail}: reason 'gone' (no
-- such run), 'not_completed' (detail the status), 'none' (no failed job).
-- The run is active again beside the others, and current (clients are shown it by default).
local status = redis.call('HGET', run_key, 'status')
if not status then
  return {0, 'gone', ''}
end
if status ~= 'completed' then
  return {0, 'not_completed', status}
end
local jobs = redis.call('HKEYS', errors_key)
if #jobs == 0 then
  return {0, 'none', ''}
end
local now = now_ms(ARGV[2])
local spacing = 60000 / tonumber(redis.call('HGET', run_key, 'yMinute'))
table.sort(jobs, function(a, b) return tonumber(a) < tonumber(b) end)
local args = {}
for i, job in ipairs(jobs) do
  redis.call('SETBIT', done_key, job, 0)
  redis.call('HDEL', attempts_key, job, 'expired:' .. job .. ':1:r-1')  -- fresh attempts
  redis.call('HSET', owners_key, job, job .. ':1:r-1')
  args[#args + 1] = now + (i - 1) * spacing
  args[#args + 1] = job .. ':1:r-1'
end
zadd_pairs(messages_key, args)
redis.call('DEL', errors_key)
for _, key in ipairs({run_key, done_key, results_key, errors_key, attempts_key, items_key}) do
  redis.call('PERSIST', key)
end
redis.call('HINCRBY', run_key, 'failed', -#jobs)
redis.call('HINCRBY', run_key, 'retried', #jobs)
-- the time between its end and now was not spent running: rate figures leave it out
redis.call('HINCRBY', run_key, 'pausedMs',
  now - tonumber(redis.call('HGET', run_key, 'finishedAt')))
redis.call('HSET', run_key, 'status', 'running', 'heldBack', '0')
-- (a deadline run's failed jobs run again at its last rate: its deadline has passed)
redis.call('HDEL', run_key, 'finishedAt', 'webhook', 'webhookError', 'deadline', 'projectedFinish')
activate(active_key, ARGV[1], now)
redis.call('SET', current_key, ARGV[1])
publish_state(run_key, current_key, ARGV[1])
return {#jobs}
