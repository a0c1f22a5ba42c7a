"""The receiving side of webhooks: signatures, routing of deliveries to waiters, the
local listeners (aiohttp), the relay, and the public tunnels to them (ngrok via pyngrok, cloudflared).

    signatures.py   pure HMAC checks for Get3W and Abstrakt deliveries (every secret, every scheme)
    standard.py     the Standard Webhooks headers: v1 (the spec) and v3 (WaveSpeed) signatures
    delivery.py     the one classification of a delivery (parse, attribute, verify) and de-duplication
    inbox.py        routes deliveries to the waiter of their task, de-duplicated; signature rejections;
                    the channel's loss
    endpoint.py     CallbackEndpoint: how a token's requests are answered, whichever server carries them
    listener.py     CallbackListener (the ephemeral server of run/batch) and check_reachable()
    relay.py        RelayServer: the public side every g3w borrows, and its control port (g3w relay)
    relay_client.py RelayLink: a borrower's registration, one WebSocket, answered by its endpoint
    relay_state.py  relay.json, relay.lock, and asking a relay over its control port (stdlib only)
    relay_wire.py   the frames between the relay and its borrowers
    receiver.py     Receiver: the `g3w listen` server (any path, verify, de-duplicate, queue)
    listen_loop.py  the `g3w listen` loop: print, exec, forward, save; the stop rules
    forwarder.py    --forward-to with backoff, --exec, --save and --replay
    http_common.py  small aiohttp helpers shared by the two servers; serve_app() with their limits
    budget.py       ByteBudget: the bytes of deliveries `g3w listen` holds, under a limit
    tunnel.py       open_ngrok() -> Tunnel, with ``dropped`` (the only module that imports pyngrok)
    ngrok_agent.py  which file is the agent (never pyngrok's script), its version, installing it
    ngrok_errors.py the kinds of ngrok failure, their hints, the agent's words in one line
    ngrok_log.py    the agent's log after start: drops, and the authtoken kept out of pyngrok's log
    cloudflared.py  open_cloudflared() -> a quick tunnel, its URL read from cloudflared's log
    ngrok_config.py the agent's private config (the authtoken); removes those killed runs left

Nothing here imports the providers or the HTTP client: callbacks are parsed with payloads.py.
"""
