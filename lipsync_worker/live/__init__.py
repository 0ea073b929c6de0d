"""Live sessions: the WebRTC runtime that the lip-sync worker hosts for the avatars it warmed up.

`registry` (Redis bookkeeping of runtimes and sessions) is light and is also used by the web
process; the other modules import aiortc and run only inside the worker.
"""
