-- Read a run's state in the published JSON shape.
-- KEYS[1] run hash
-- Returns the JSON text, or false when the run does not exist.
return state_json(KEYS[1]) or false
