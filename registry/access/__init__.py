"""API keys: who may call, as which party and role."""
