"""The Celery side: workers and beat. The app (``app``), the scheduler tick (``tick``) run in
beat (``scheduler``), the job batches (``batches``) under leases (``leases``), publisher
confirms (``confirms``), completion webhooks (``webhooks``), heartbeats (``liveness``). The
entry is ``optio.tasks``. Uses the store, the broker settings, the settings and the names."""
