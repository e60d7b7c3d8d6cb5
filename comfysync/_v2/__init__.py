"""The Comfy API v2 surface: jobs, live job events over server-sent events, assets."""
