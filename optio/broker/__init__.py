"""Celery's broker as every optio process declares it: the worker's app and the web's producer
(``delivery``), and kombu's Sentinel transport with a failover crash fixed (``sentinel``)."""
