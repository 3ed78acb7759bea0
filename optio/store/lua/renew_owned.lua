-- Extend (or end) the leases of the messages a prefork worker's pool processes run, from the
-- worker's main process (optio/worker/pool_leases.py): a pool process that holds the GIL for
-- longer than a lease (one long C call) cannot renew its own. The main process knows which
-- message each pool process runs, not the token it leased with: a lease is that process's when
-- its token is the process's owner id ("<worker id>.<pid>") followed by '-' or '_'.
-- Lease ms 0 ends them now (the pool process died): the broker's redelivery or the next tick
-- takes the message at once, as after an expiry (counted towards OPTIO_MAX_DELIVERIES).
-- Keys: reads run_key, holders_key; writes messages_key.
-- ARGV[1] lease ms (0: end the leases now)
-- ARGV[2] now ms ('' = Redis clock)
-- ARGV[3], ARGV[4], ...: message key, owner id, message key, owner id, ...
-- Returns {status, message key not leased by its owner, ...}: status is the run's ('gone' when
-- unknown); a message whose job ended, was taken by another delivery, or whose run ended is not
-- leased by its owner, and nothing is written for it.

-- Whether the holders-hash value `holder` ("token:jobs left") is a lease of owner id `owner`.
local function owned_by(holder, owner)
  if not holder or string.sub(holder, 1, #owner) ~= owner then
    return false
  end
  local sep = string.sub(holder, #owner + 1, #owner + 1)
  return sep == '-' or sep == '_'
end

return renew_held(run_key, holders_key, messages_key, owned_by)
