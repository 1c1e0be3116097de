"""Provider adapters: raw server events to canonical realtime events."""
