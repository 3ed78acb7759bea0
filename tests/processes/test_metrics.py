"""GET /metrics of a web process alone: it needs the token when reads are protected, and the
Grafana dashboard uses only the names it exports. (Against a system of the test's own:
tests/faults/test_metrics.py.)"""

from __future__ import annotations

import json
import re

import requests

from optio.testing import ROOT
from tests.faults.test_metrics import scrape


def test_metrics_need_the_token_when_reads_are_protected(web_alone):
    web = web_alone(OPTIO_API_TOKEN="metrics-token", OPTIO_PROTECT_READS="1")
    refused = requests.get(web.base + "/metrics", timeout=5)
    assert refused.status_code == 401 and "API token" in refused.json()["error"]
    scrape(web, headers={"Authorization": "Bearer metrics-token"})


def test_the_grafana_dashboard_uses_only_exported_metrics(web_alone):
    exported = {name.split("{")[0] for name in scrape(web_alone())}
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    names = {n for expr in exprs for n in re.findall(r"\boptio_[a-z_]+", expr)}
    assert names and names <= exported, names - exported
