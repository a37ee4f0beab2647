"""tickwire gateway: live ticker updates over SSE and WebSocket, resumable on any node."""
