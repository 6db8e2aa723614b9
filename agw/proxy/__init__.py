"""The proxy: raw asyncio Protocol server over httptools, routing, upstream pool, admin listener."""
