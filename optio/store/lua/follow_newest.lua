-- Clients that chose no run are shown the current run: when it has ended (or none is set),
-- the newest active run becomes current, and its state is published on the progress channel.
-- Keys (run_key is the newest active run's): reads active_key, writes current_key, run_key
-- (seq).
-- ARGV[1] id of the newest active run
-- Returns 1 when that run became current (and publishes its state), else 0.
local current = redis.call('GET', current_key)
if current == ARGV[1] or not is_active(active_key, ARGV[1]) then
  return 0
end
if current and is_active(active_key, current) then
  return 0  -- the current run still runs: clients stay with it
end
redis.call('SET', current_key, ARGV[1])
publish_state(run_key, current_key, ARGV[1])
return 1
