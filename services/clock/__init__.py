"""Business time (R-X-1): the `clock.ticks` topic and its single event type.

Produced by `flexchain clock` (real time, or simulated fast for demos and tests); consumed by the
routers of every service that has time-driven rules, which turn a tick into a `CheckTimers`
command on each partition of their command topic.
"""
