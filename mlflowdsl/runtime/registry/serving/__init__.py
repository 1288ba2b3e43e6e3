"""Serving a registered model over HTTP: the Starlette app every replica runs (:mod:`.app`),
the supervisor that keeps a gunicorn master and its replicas alive (:mod:`.supervisor`), and
the autoscaling decision (:mod:`.autoscaler`)."""
