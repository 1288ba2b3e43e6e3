"""Cluster mode: submitted executions on Redis Streams, orchestrator instances that claim them
by shard, failover of a dead instance's executions, cancellation flags, cluster health.

- :mod:`.submission`: submission (``submit_plan``), one stream per domain, dead letters, cancel flags.
- :mod:`.instance`: ``OrchestratorInstance``, what ``mlw orchestrator start`` runs.
- :mod:`.health`: ``cluster_status`` for ``mlw cluster status``.
"""
