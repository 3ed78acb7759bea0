-- Stop the active run: nothing more is enqueued; workers skip its queued jobs and stop running
-- the rest of a started message at their next flush.
-- Keys: reads active_key, current_key; writes run_key, active_key (released), outbox_key (when
-- a webhook is due: finish_run), and the run's keys expire (expire_run).
-- ARGV[1] run id
-- ARGV[2] now ms ('' = Redis clock)
-- Returns 1 when stopped (and publishes the state), 0 when that run is not active.
if not is_active(active_key, ARGV[1]) then
  return 0
end
finish_run(run_key, active_key, outbox_key, ARGV[1], 'stopped', now_ms(ARGV[2]))
expire_run(run_key, done_key, results_key, errors_key, attempts_key, messages_key, holders_key,
  owners_key, items_key)
publish_state(run_key, current_key, ARGV[1])
return 1
