-- A worker starts a message: lease it and learn which of its jobs still need running.
-- When the run is running and some jobs are not counted yet, the caller now holds the lease
-- until now + ARGV[5] and runs the listed jobs. While the run is paused no job is listed: the
-- message is parked (acknowledged here, sent again by the tick after resume).
-- A lease that ran out (or whose holder is dead) is an expiry of the message (lease_expired):
-- the ARGV[8]-th gives the message up instead, its own jobs not done yet are counted as failed
-- for good, and none is listed.
-- One live message per job: a job that owners_key gives to another message (its retry, throttle
-- rerun or retry-failed rerun is pending as a message of its own) is not listed, nor leased,
-- nor counted in leasedJobs: that message accounts for it. A message left with no job of its own
-- is done (never parked). While no job has an owner this costs one EXISTS per message.
-- Keys: reads done_key, owners_key; reads and writes run_key (leasedJobs), messages_key,
-- holders_key, attempts_key (the expiries, field "expired:<message key>"); when the message is
-- given up also results_key, errors_key, metrics_key (failed_total), current_key, and when that
-- completes the run (finish_run) active_key, outbox_key, and the run's keys expire (expire_run).
-- ARGV[1] message key
-- ARGV[2] first job id
-- ARGV[3] job count
-- ARGV[4] the worker's token
-- ARGV[5] lease ms
-- ARGV[6] now ms ('' = Redis clock)
-- ARGV[7] token of a holder the caller knows is dead ('' = none): its live lease is taken over
-- ARGV[8] expiries of a message's lease that give it up (OPTIO_MAX_DELIVERIES)
-- Returns {status, held, job id, ...}: status is the run's ('gone' when unknown); held is 1 when
-- another worker holds a live lease on this message (this delivery is a duplicate: drop it,
-- unless that worker is dead), and then the only other item is that worker's token; held is 2
-- when the message was given up now, and then the only other item is how many jobs it failed
-- (the state is published when they are more than 0).

-- `out` ({status, held, job id, ...}) without the jobs that owners_key gives to a message other
-- than `key` (HMGET in chunks of 1000: Lua's unpack takes a bounded number of values).
local function own_jobs(owners_key, key, out)
  local kept = {out[1], out[2]}
  for i = 3, #out, 1000 do
    local last = math.min(i + 999, #out)
    local owners = redis.call('HMGET', owners_key, unpack(out, i, last))
    for j = i, last do
      local owner = owners[j - i + 1]
      if not owner or owner == key then
        kept[#kept + 1] = out[j]
      end
    end
  end
  return kept
end

local status = redis.call('HGET', run_key, 'status')
if status == false then
  return {'gone', 0}
end
if not is_live(status) then
  return {status, 0}
end
local now = now_ms(ARGV[6])
local key = ARGV[1]
local holder = redis.call('HGET', holders_key, key)
if holder then
  local deadline = tonumber(redis.call('ZSCORE', messages_key, key))
  local token = string.sub(holder, 1, string.find(holder, ':', 1, true) - 1)
  if deadline ~= nil and deadline > now and (ARGV[7] == '' or ARGV[7] ~= token) then
    return {status, 1, token}
  end
  -- expired and not yet taken by the tick, or its holder is dead: this delivery takes it over
  drop_holder(run_key, holders_key, key)
  local failed = lease_expired(run_key, done_key, results_key, errors_key, attempts_key,
    messages_key, owners_key, metrics_key, key, tonumber(ARGV[8]), now)
  if failed then
    if failed > 0 then
      local run_id = redis.call('HGET', run_key, 'runId')
      if complete_if_done(run_key, active_key, outbox_key, run_id, now) then
        expire_run(run_key, done_key, results_key, errors_key, attempts_key, messages_key,
          holders_key, owners_key, items_key)
      end
      publish_state(run_key, current_key, run_id)
    end
    return {redis.call('HGET', run_key, 'status'), 2, failed}
  end
end
local out = {status, 0}
local first = tonumber(ARGV[2])
for _, job in ipairs(unset_bits(done_key, first, first + tonumber(ARGV[3]) - 1)) do
  out[#out + 1] = job
end
if #out > 2 and redis.call('EXISTS', owners_key) == 1 then
  out = own_jobs(owners_key, key, out)
end
local pending = #out - 2
if pending == 0 then
  -- all done or owned by other messages: a duplicate, a retry already run, or a message whose
  -- other jobs went to retries
  redis.call('ZREM', messages_key, key)
  return out
end
if status == 'paused' then
  redis.call('ZADD', messages_key, PARKED, key)  -- the tick sends it again once the run resumes
  return {status, 0}
end
redis.call('HSET', holders_key, key, ARGV[4] .. ':' .. pending)
redis.call('ZADD', messages_key, now + tonumber(ARGV[5]), key)
redis.call('HINCRBY', run_key, 'leasedJobs', pending)
return out
