-- The outcomes of jobs first .. first+count-1, read in one step for the results export: which
-- are done (their bits), and the record, error and attempts of each done job (names.py says
-- what each hash holds; optio/store/outcomes.py reads them). One script, so a retry-failed or a
-- count never falls between the reads of a slice.
-- Keys: reads done_key, results_key, errors_key, attempts_key. Writes nothing.
-- ARGV[1] first job id
-- ARGV[2] jobs to read (at most 1000: Lua's unpack takes a bounded number of values)
-- Returns {done job ids in order, their records, their errors, their attempts} (nil where a
-- hash has no field of the job).
local first = tonumber(ARGV[1])
local last = first + tonumber(ARGV[2]) - 1
local pending = {}
for _, job in ipairs(unset_bits(done_key, first, last)) do
  pending[job] = true
end
local done = {}
for job = first, last do
  if not pending[job] then
    done[#done + 1] = job
  end
end
if #done == 0 then
  return {{}, {}, {}, {}}
end
return {
  done,
  redis.call('HMGET', results_key, unpack(done)),
  redis.call('HMGET', errors_key, unpack(done)),
  redis.call('HMGET', attempts_key, unpack(done)),
}
