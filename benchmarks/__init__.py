"""Benchmarks of the transcript engine against raw ``sqlite3`` (``make bench``).

Run ``python -m benchmarks --help`` for the options. Every measurement is
repeated (``--runs``, default 5) with the engine and the raw ``sqlite3``
baseline interleaved in the same process, and the medians are printed side by
side in one table:

(a) append one message per call, each call committed;
(b) append 10,000 messages in calls of 100;
(c) load a 10,000-message session cold, with and without snapshots, against raw
    ``sqlite3`` selecting and decoding the same rows;
(d) mean append time when the session holds 100 versus 10,000 messages;
(e) listing 10,000 sessions, cold.

A second part (``benchmarks.branching``) follows, with its own table: forks,
rewrites, loading a deep fork and the memory of forks, each measured against
its own baseline (a small session, the replacement's size, the fork's root,
one session). A third (``benchmarks.realtime``) measures realtime ingestion:
the pure reducer, ``ingest_many`` into SQLite in calls of 100, and the cost of
a duplicate. ``--only suite|branching|realtime`` runs one part.
"""
