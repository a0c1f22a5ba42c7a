"""The receiving side of webhooks: signatures, routing of deliveries to waiters, the
local listener (aiohttp) and the public tunnel to it (ngrok via pyngrok).

    signatures.py  pure HMAC checks for Get3W and Abstrakt deliveries
    inbox.py       Delivery records; routes them to the waiter of their task, de-duplicated
    listener.py    CallbackListener (the aiohttp server) and check_reachable()
    tunnel.py      open_ngrok() -> Tunnel (the only module that imports pyngrok)
"""
