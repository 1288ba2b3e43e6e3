"""Execution of compiled plans: executor, cache, state, events, coordination."""
