"""One module per seed runtime: that runtime's own ``Session`` methods
(names adapted to Python) over :class:`engine.Transcripts`. Each shows how a
runtime migrating to the engine keeps its API; docs/seeds.md maps every
field and method of the five seeds to the engine feature that hosts it."""
