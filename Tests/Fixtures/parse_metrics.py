#!/usr/bin/env python3
"""Fetches a Prometheus /metrics page and prints its samples as JSON, parsed by the
official prometheus_client parser (an independent check of our exposition format)."""
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
samples = []
for family in text_string_to_metric_families(text):
    for s in family.samples:
        samples.append({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(samples))
