-- Find the jobs of a stalled run that were reserved but never counted, to enqueue them again.
-- A run is stalled when jobs are outstanding and nothing was counted (or swept) for a while:
-- their messages were lost (a tick that died between reserving and sending, a job acknowledged
-- while Redis was away). Enqueuing one again is harmless: each job id is counted once.
-- KEYS[1] active run id   KEYS[2] run hash   KEYS[3] done bitmap   KEYS[4] current run id
-- ARGV[1] run id   ARGV[2] stall ms   ARGV[3] most ids to return   ARGV[4] now ms ('' = Redis clock)
-- Returns the job ids (possibly none).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {}
end
local h = hgetall(KEYS[2])
local reserved = tonumber(h.reserved)
if tonumber(h.processed) + tonumber(h.failed) >= reserved then
  return {}
end
local now = now_ms(ARGV[4])
local quiet_since = math.max(tonumber(h.progressAt), tonumber(h.sweptAt or 0))
if now - quiet_since < tonumber(ARGV[2]) then
  return {}
end
local most = tonumber(ARGV[3])
local ids = {}
local chunk = 4096
local byte_end = math.floor((reserved - 1) / 8)
local offset = 0
while offset <= byte_end and #ids < most do
  local last = math.min(offset + chunk - 1, byte_end)
  local bytes = redis.call('GETRANGE', KEYS[3], offset, last)
  for i = 0, last - offset do
    local b = string.byte(bytes, i + 1) or 0
    if b ~= 255 then
      for bit = 0, 7 do
        local job = (offset + i) * 8 + bit
        -- bit 0 of a Redis bitmap is the most significant bit of its byte
        if job < reserved and math.floor(b / 2 ^ (7 - bit)) % 2 == 0 then
          ids[#ids + 1] = job
          if #ids >= most then
            break
          end
        end
      end
    end
    if #ids >= most then
      break
    end
  end
  offset = last + 1
end
redis.call('HSET', KEYS[2], 'sweptAt', now)
if tonumber(h.enqueued) < reserved then
  -- every outstanding job now has a message again
  redis.call('HSET', KEYS[2], 'enqueued', reserved)
  publish_state(KEYS[2], KEYS[4], ARGV[1])
end
return ids
