-- A paced job is about to start: the time it may start, one spacing (at the effective rate,
-- less ARGV[3] of it) after the run's last start, whichever worker made it. Delivery jitter (a
-- message that came late, then one on time) never brings two starts closer than that, which a
-- downstream allowing no burst needs. The share ARGV[3] lets starts that fell behind catch up.
-- Keys: reads and writes run_key (nextStart).
-- ARGV[1] run id
-- ARGV[2] now ms ('' = Redis clock)
-- ARGV[3] share of a spacing a start may come early (0 <= s < 1)
-- Returns ms to wait before the start (0 when the run is not running: nothing to pace).
local f = redis.call('HMGET', run_key, 'status', 'rateNow', 'yMinute', 'nextStart', 'shareRate')
if f[1] ~= 'running' then
  return 0
end
local now = now_ms(ARGV[2])
local slot = math.max(now, tonumber(f[4] or 0))
local spacing = 60000 / schedule_rate(f[2] or f[3], f[5])
redis.call('HSET', run_key, 'nextStart', tostring(slot + spacing * (1 - tonumber(ARGV[3]))))
return math.floor(slot - now + 0.5)
