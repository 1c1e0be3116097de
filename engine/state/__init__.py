"""What a session is, with no I/O: messages and their content
(``content``), revision ids (``revisions``), the persistent message
sequence (``sequence``), the closed union of stored events (``events``, with
the canonical realtime events they record in ``realtime_events``), and the
immutable ``Session`` state that ``evolve`` and ``fold`` build from them
(``transcript``)."""
