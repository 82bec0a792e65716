"""Content-aware delivery: a server packages a video with per-chunk correction weights
(``server.deliver``); a client restores it with them swapped in mid-stream (``client.restore``)."""
