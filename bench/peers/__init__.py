"""The benchmark's peers: the inventory service's reservation job on other stream processors.

`job.py` (the job in Python, fastavro only), `quix_peer.py`, `faust_peer.py`, `kstreams/` (Java),
and `harness.py` (build, install, config, child processes; imports flexchain). Nothing is imported
here: the Python peers import `bench.peers.job` from their own virtualenvs, without flexchain.
"""
