"""optio's state in Redis, shared by every process: connections, the Lua scripts and the verbs
on them, one part per caller (``runs``, ``schedule``, ``counting``, ``leases``, ``outbox``,
``heartbeats``). The entry is ``optio.redis_state``. Uses only the settings and the names."""
