"""The chaos soak (issue 19): a real system (web, beat, two workers with ``-c 2``, Redis with
its append-only file) runs one long run at 60,000/min of jobs of random length, some failing
once, some throttled, while a seeded chaos loop kills, freezes and restarts its parts; then
every execution is accounted for.

``python -m optio.testing.soak --minutes N --seed S`` (``scripts/soak.sh``) runs it:
``plan`` (what the seed decides), ``job`` (the job function and its execution log), ``cluster``
(the processes and their supervisor), ``chaos`` (the faults), ``monitor`` (samples),
``verdict`` (the explanation rule and the checks), ``report`` (the table), ``run`` (all of it).
"""
