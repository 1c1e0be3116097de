"""Adapters: a transcript store behind the session interfaces of agent
frameworks (``engine.adapters.openai_agents``). Each module imports nothing
of its framework, so it loads without it."""
