"""Provider adapters: Get3W v3, Get3W v1 and Abstrakt behind one interface.

    base.py        the Adapter protocol and the optional capabilities (ModelLister, ModelDescriber,
                   StreamSubmitter, Account, KeyCheck)
    routing.py     model names -> Route (provider, API, model id)
    factory.py     Route -> adapter (the one table of adapter classes), default base URLs
    submitting.py  submit_task / nothing_created: whether a failed submit may hide a task
    common.py      helpers the adapters share (URL paths, reading answers, tables)
    get3w_v3.py, get3w_v1.py, abstrakt.py   one module per API
    model_lists.py, v3_stream.py            model list items and v3 stream events, parsed

Adding a provider or an API: a module with an adapter class (parse its JSON into ``Task`` with
payloads.py), one row in ``factory.ADAPTERS``, its facts in ``names.FACTS``, its routing rule in
routing.py, and a sandbox emulation for the tests.
"""

from __future__ import annotations

from get3w_cli.providers.base import (
           Account,
           AccountRows,
           Adapter,
           KeyCheck,
           ModelDescriber,
           ModelLister,
           StreamSubmitter,
           SubmitStream,
)
from get3w_cli.providers.factory import (
           ADAPTERS,
           adapter_class,
           default_base_url,
           error_parser,
           make_adapter,
           open_adapter,
)
from get3w_cli.providers.routing import PROVIDERS, Route, resolve_route
from get3w_cli.providers.submitting import nothing_created, refuses_streaming, submit_task

__all__ = ["ADAPTERS", "PROVIDERS", "Account", "AccountRows", "Adapter", "KeyCheck", "ModelDescriber", "ModelLister",
           "Route", "StreamSubmitter", "SubmitStream", "adapter_class", "default_base_url", "error_parser",
           "make_adapter", "nothing_created", "open_adapter", "refuses_streaming", "resolve_route", "submit_task"]
