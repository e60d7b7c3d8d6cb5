"""ComfyPool: the engine, one worker per server, policies."""
