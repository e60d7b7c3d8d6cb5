"""WebSocket: decoding frames into events and the listener thread."""
