"""Transports: the only place sockets, ssl, threads and asyncio appear."""
