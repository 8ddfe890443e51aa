"""Broadcasts: one message to a whole audience at a planned time (docs/broadcasts.md).

`format` (the file), `loader` (files → drafts), `audience` (who), `schedule` (when, per
recipient), `states` (the lifecycle, enforced in the database), `snapshot` (the audience
frozen when the schedule arrives), `sending` (the worker job that turns due recipients into
queued messages), `as_journey` (how a broadcast borrows the journey machinery: rendering,
consent, fallback, conversions, KPIs).
"""
