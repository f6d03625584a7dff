"""The scheduler's own records (registry/scheduler.py runs the jobs): one row per job and fire time."""
