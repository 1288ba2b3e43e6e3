"""Serving a registered model over HTTP: the Starlette app every replica runs (:mod:`.app`),
the supervisor that keeps a gunicorn master and its replicas alive (:mod:`.supervisor`), the
autoscaling decision (:mod:`.autoscaler`), and the detached supervisor process of a
deployment (``python -m mlflowdsl.runtime.registry.serving``, :mod:`.__main__`)."""
