"""Scheduled KPI reports: declared as files (`reports/*.yaml`), e-mailed to stakeholders once
per period by the worker, viewable in the console and through signed share links."""
