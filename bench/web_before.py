"""``python -m bench.web_before``: the web process as optio ran it before its web-tier changes,
for the latency benchmark's "before" figures: Python's default garbage-collection thresholds
(and permessage-deflate accepted: the benchmark sets OPTIO_WS_COMPRESSION=1)."""

import gc

from optio import config  # first: monkey-patches for eventlet
from optio.webapp import serve as web_serve

DEFAULT_THRESHOLDS = (700, 10, 10)  # CPython's

if __name__ == "__main__":
    web_serve.GC_YOUNG_THRESHOLD = DEFAULT_THRESHOLDS[0]
    gc.set_threshold(*DEFAULT_THRESHOLDS)
    web_serve.main(config.SETTINGS)
