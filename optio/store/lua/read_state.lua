-- Read a run's state in the published JSON shape.
-- Keys: reads run_key.
-- No ARGV.
-- Returns the JSON text, or false when the run does not exist.
return state_json(run_key) or false
