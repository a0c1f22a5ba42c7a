"""The receiving side of webhooks: signatures, routing of deliveries to waiters, the
local listeners (aiohttp) and the public tunnel to them (ngrok via pyngrok).

    signatures.py   pure HMAC checks for Get3W and Abstrakt deliveries (every secret, every scheme)
    standard.py     the Standard Webhooks headers: v1 (the spec) and v3 (WaveSpeed) signatures
    delivery.py     the one classification of a delivery (parse, attribute, verify) and de-duplication
    inbox.py        routes deliveries to the waiter of their task, de-duplicated; signature rejections
    listener.py     CallbackListener (the ephemeral server of run/batch) and check_reachable()
    receiver.py     Receiver: the `g3w listen` server (any path, verify, de-duplicate, queue)
    listen_loop.py  the `g3w listen` loop: print, exec, forward, save; the stop rules
    forwarder.py    --forward-to with backoff, --exec, --save and --replay
    http_common.py  small aiohttp helpers shared by the two servers; serve_app() with their limits
    budget.py       ByteBudget: the bytes of deliveries `g3w listen` holds, under a limit
    tunnel.py       open_ngrok() -> Tunnel, with ``dropped`` (the only module that imports pyngrok)
    ngrok_agent.py  which file is the agent (never pyngrok's script), its version, installing it
    ngrok_errors.py the kinds of ngrok failure, their hints, the agent's words in one line
    ngrok_log.py    the agent's log after start: drops, and the authtoken kept out of pyngrok's log
    ngrok_config.py the agent's private config (the authtoken); removes those killed runs left

Nothing here imports the providers or the HTTP client: callbacks are parsed with payloads.py.
"""
