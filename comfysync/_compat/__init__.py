"""Everything kept for code written against comfy-api-client, in one place.

Two modules, because the names sit at two ends of the layers:

* :mod:`comfysync._compat.names` (imports nothing of comfysync): the event-name aliases
  ``"execution_complete"`` and ``"all"``, resolved by :func:`comfysync.events.normalize_key`,
  and the result names ``PromptResult.output_images`` / ``OutputFile.image``, mixed into those
  classes;
* :mod:`comfysync._compat.client` (on top of the client): ``create_client``, ``ComfyClient``
  with ``submit_workflow`` / ``fetch_results``, ``SeedPromptJob`` and ``read_json`` (also
  ``comfysync.utils.read_json``).

This package module imports neither, so the low one can be imported from below.
"""
